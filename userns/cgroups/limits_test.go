package cgroups

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseSizeReadsPodmanSpellings(t *testing.T) {
	for in, want := range map[string]int64{
		"1048576": 1 << 20, "512m": 512 << 20, "2g": 2 << 30, "2G": 2 << 30, "1.5GB": 3 << 29,
		"64k": 64 << 10, "100b": 100, "1t": 1 << 40, "32M": 32 << 20,
	} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "m", "-1", "+5m", "12x", "1.2.3g", "1e400", "nan", "5 m"} {
		if got, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", bad, got)
		}
	}
}

func TestCPUsIsAQuotaPerHundredMilliseconds(t *testing.T) {
	for in, want := range map[string]int64{"0.5": 50000, "1": 100000, "2.25": 225000, "0.01": 1000} {
		if got, err := CPUs(in); err != nil || got != want {
			t.Errorf("CPUs(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"0", "-1", "0.001", "two", "NaN", "Inf"} {
		if _, err := CPUs(bad); err == nil {
			t.Errorf("CPUs(%q): want an error", bad)
		}
	}
}

func TestWeightsConvertAsRuncDoes(t *testing.T) {
	for shares, want := range map[uint64]uint64{2: 1, 1024: 39, 262144: 10000} {
		if got := CPUWeight(shares); got != want {
			t.Errorf("CPUWeight(%d) = %d, want %d", shares, got, want)
		}
	}
	for w, want := range map[uint16]uint64{10: 1, 500: 4950, 1000: 10000} {
		if got := IOWeight(w); got != want {
			t.Errorf("IOWeight(%d) = %d, want %d", w, got, want)
		}
	}
}

func TestSettingsAreTheFilesPodmanWrites(t *testing.T) {
	none := func(string) bool { return false }
	for _, tc := range []struct {
		l    Limits
		want []setting
	}{
		{Limits{CPUQuota: 50000}, []setting{{file: "cpu.max", value: "50000 100000"}}},
		{Limits{CPUQuota: 20000, CPUPeriod: 50000}, []setting{{file: "cpu.max", value: "20000 50000"}}},
		{Limits{Memory: 32 << 20}, []setting{{file: "memory.max", value: "33554432"}, {file: "memory.swap.max", value: "33554432", optional: true}}},
		{Limits{Memory: 32 << 20, MemorySwap: 48 << 20}, []setting{{file: "memory.max", value: "33554432"}, {file: "memory.swap.max", value: "16777216"}}},
		{Limits{Memory: 32 << 20, MemorySwap: -1}, []setting{{file: "memory.max", value: "33554432"}, {file: "memory.swap.max", value: "max"}}},
		{Limits{MemoryReservation: 1 << 20}, []setting{{file: "memory.low", value: "1048576"}}},
		{Limits{PidsLimit: 32}, []setting{{file: "pids.max", value: "32"}}},
		{Limits{PidsLimit: 7}, []setting{{file: "pids.max", value: "7"}}}, // settings does not judge
		{Limits{PidsLimit: -1}, []setting{{file: "pids.max", value: "max"}}},
		{Limits{CPUShares: 1024}, []setting{{file: "cpu.weight", value: "39"}}},
		{Limits{BlkioWeight: 500}, []setting{{file: "io.weight", value: "default 4950"}}},
		{Limits{CpusetCpus: "0-1", CpusetMems: "0"}, []setting{{file: "cpuset.cpus", value: "0-1"}, {file: "cpuset.mems", value: "0"}}},
	} {
		if got := tc.l.settings(none); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%+v: settings = %+v, want %+v", tc.l, got, tc.want)
		}
	}
	bfq := func(f string) bool { return f == "io.bfq.weight" }
	if got := (Limits{BlkioWeight: 500}).settings(bfq); got[0] != (setting{file: "io.bfq.weight", value: "500"}) {
		t.Errorf("with BFQ: %+v", got)
	}
}

func TestControllersAreThoseTheLimitsNeed(t *testing.T) {
	l := Limits{Memory: 64 << 20, CPUQuota: 50000, PidsLimit: 10, CpusetCpus: "0", BlkioWeight: 100}
	if got := strings.Join(l.Controllers(), " "); got != "cpuset cpu io memory pids" {
		t.Errorf("Controllers = %q", got)
	}
	if got := (Limits{}).Controllers(); len(got) != 0 {
		t.Errorf("no limits need %v", got)
	}
}

func TestValidateRefusesWhatPodmanRefuses(t *testing.T) {
	for _, l := range []Limits{
		{Memory: 1 << 20},
		{Memory: 64 << 20, MemoryReservation: 128 << 20},
		{Memory: 64 << 20, MemorySwap: 32 << 20},
		{MemorySwap: 64 << 20},
		{MemorySwap: -2},
		{CPUShares: 1},
		{CPUShares: 300000},
		{PidsLimit: -5},
		{PidsLimit: 8},
		{BlkioWeight: 5},
		{CPUPeriod: 10},
	} {
		if err := l.Validate(); err == nil {
			t.Errorf("%+v: want an error", l)
		}
	}
	if err := (Limits{Memory: 64 << 20, MemorySwap: -1, PidsLimit: -1, CPUShares: 2}).Validate(); err != nil {
		t.Errorf("valid limits refused: %v", err)
	}
}

func TestOwnReadsTheUnifiedLine(t *testing.T) {
	hybrid := "12:pids:/user.slice\n1:name=systemd:/user.slice/session-1.scope\n0::/user.slice/session-1.scope\n"
	if got, err := parseOwn(strings.NewReader(hybrid)); err != nil || got != "/user.slice/session-1.scope" {
		t.Errorf("parseOwn = %q, %v", got, err)
	}
	if _, err := parseOwn(strings.NewReader("4:memory:/\n")); err == nil {
		t.Error("a v1-only table: want an error")
	}
}

func TestLimitsPrintAsFlagsThatParseBack(t *testing.T) {
	l := Limits{Memory: 64 << 20, CPUQuota: 50000, PidsLimit: 50, MemorySwap: -1}
	if got := l.String(); got != "memory=64m memory-swap=-1 cpus=0.5 pids=50" {
		t.Errorf("String = %q", got)
	}
	for _, n := range []int64{1000, 1536 << 10, 64 << 20, 3 << 30} {
		if back, err := ParseSize(FormatSize(n)); err != nil || back != n {
			t.Errorf("FormatSize(%d) = %q reads back as %d, %v", n, FormatSize(n), back, err)
		}
	}
}

func TestParseListReadsTheKernelsFormat(t *testing.T) {
	got, err := ParseList("0-2,5,7-8")
	if err != nil || len(got) != 6 || !got[0] || !got[2] || !got[5] || !got[8] || got[3] {
		t.Errorf("ParseList = %v, %v", got, err)
	}
	for _, bad := range []string{"a", "3-1", "1-", "-1", "1,,2"} {
		if _, err := ParseList(bad); err == nil {
			t.Errorf("ParseList(%q): want an error", bad)
		}
	}
}
