package userns

import (
	"errors"
	"strings"
	"testing"
)

// A peer that dies with a message of ours unread makes our next read fail
// with ECONNRESET rather than return 0: it is a hang-up all the same.
func TestRecvFromAPeerThatDiedUnreadIsAHangUp(t *testing.T) {
	ours, theirs := testChannels(t)
	if err := ours.send(Message{Kind: MsgConfig}); err != nil {
		t.Fatal(err)
	}
	theirs.Close() // dies without reading
	if _, _, err := ours.recv(); !errors.Is(err, errHungUp) {
		t.Fatalf("recv after the peer died: %v, want a hang-up", err)
	}
}

// A message is received whole, whatever its size.
func TestRecvSizesItsBufferFromThePacket(t *testing.T) {
	ours, theirs := testChannels(t)
	for _, size := range []int{0, 1, 4096, 100000} {
		env := []string{strings.Repeat("a", size)}
		if err := ours.send(Message{Kind: MsgConfig, Config: &Config{Env: env}}); err != nil {
			t.Fatal(err)
		}
		m, _, err := theirs.recv()
		if err != nil || m.Config == nil || len(m.Config.Env[0]) != size {
			t.Fatalf("size %d: %v", size, err)
		}
	}
}

// testChannels returns the two ends of a channel, closed after the test.
func testChannels(t *testing.T) (ours, theirs *channel) {
	a, b, err := channelPair("test")
	if err != nil {
		t.Fatal(err)
	}
	ours, theirs = &channel{f: a, name: "peer"}, &channel{f: b, name: "us"}
	t.Cleanup(func() { ours.Close(); theirs.Close() })
	return ours, theirs
}
