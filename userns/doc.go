// Package userns is isobox's launcher: it creates the user namespace first,
// has the parent write its id maps, nests every other namespace inside it,
// and starts the container's command under a small init. It owns the
// binary's re-exec stages (listed in stages.go) and the typed protocol
// between them (messages.go).
//
// It assumes the caller is an ordinary user (real root is refused unless
// root has a subordinate range; setuid use is refused by the CLI). Run is
// called in the caller's namespaces, as a short list of named steps
// (run.go) that `run`, the detached monitor and `oci` share; holderMain
// and initMain run only as re-executed stages and never return to CLI
// code.
//
// # Process tree
//
//	isobox run                 parent: caller's uid; maps, signals, terminal, exit status
//	 ├─ newgidmap/newuidmap    run once against the holder's PID (or init's)
//	 └─ isobox:holder          clone(NEWUSER|NEWNS); its mount namespace is the one
//	     │                     network helpers can nsenter; unshares the time namespace
//	     └─ isobox:init        clone(NEWPID|NEWNS|NEWUTS|NEWIPC|NEWNET|NEWCGROUP), PID 1:
//	         │                 mounts, pivot_root, hostname, lo; forwards signals, reaps
//	         ├─ COMMAND        (with --no-init, init execs COMMAND instead)
//	         └─ ...            processes `isobox exec` asked for (execserver.go)
//
// The holder is started only when needed: for time offsets, published
// ports, and the gvisor and pasta drivers. Otherwise the parent clones init
// itself with CLONE_NEWUSER and all the nested namespaces at once (and the
// time namespace through clone3), writes the maps against init's PID while
// init's runtime starts, and sends the config only then, so init never acts
// before it is root of its namespace (startInit, directExe). With
// slirp4netns, init is the driver's nsenter target: it waits until the
// driver has brought the tap up, configures it with the driver's known
// defaults (Config.DirectNetwork, Config.Tap; the parent checks the
// driver's report against them), and only then pivots. The driver starts
// as soon as the maps are written and the record exists, and the parent
// holds the network namespace open for the helper's drain.
//
// With -d the parent's part is played by isobox:monitor, started in a new
// session by `isobox run -d`, which returns once the command runs
// (detach.go). The runner, either one, holds its container record's lock
// (package state) for as long as it lives. Under `oci create` and `oci run
// -d`, a directly cloned init is the monitor's sibling instead (clone's
// CLONE_PARENT), orphaned to the caller's subreaper as runc's init is; the
// monitor follows it through a pidfd and its channel (Config.Adopted).
//
// Existing namespaces an OCI bundle names are joined by the thread that
// clones init (or the holder), or, with a user namespace among them, by
// util-linux nsenter, which execs the holder in them (join.go).
//
// # Why exec goes through init
//
// `isobox exec` needs a process in every namespace of a running container.
// setns(2) into a user or mount namespace needs a single-threaded caller,
// which a Go program never is once its runtime has started; runc and
// podman solve this with a C constructor that runs before the runtime
// (nsexec), which would make isobox a cgo binary. isobox's init is already
// there, in every namespace, pivoted into the root and reaping the PID
// namespace, so it forks the process on request: the request comes over a
// SOCK_SEQPACKET socket in the record's directory (mode 0700; init also
// checks the peer is the container's root, i.e. the caller), with the
// caller's stdio as descriptors or, with -t, a pty from the container's
// devpts. The cost: a --no-init container, whose PID 1 is the command
// itself, cannot be entered, and exec says so; and the process is init's
// to reap, so `oci exec -d --pid-file` leaves a watcher on the host for
// the caller to reap instead (exec.go).
//
// Namespaces come from clone flags on a re-exec of /proc/self/exe, never
// from unshare(2) in a running Go process, which is multi-threaded (the
// exceptions, unshare(CLONE_NEWTIME) and, for a holder exec'd by nsenter,
// a thread's own CLONE_NEWNS, are allowed there; see holder.go).
//
// # Protocol
//
// Each stage talks to the parent over a SOCK_SEQPACKET socket: one JSON
// message per packet, with descriptors attached where needed (the pty
// master). An unexpected message is an error naming what was expected.
//
//	sequenceDiagram
//	    participant P as parent (isobox run)
//	    participant H as holder (user+mnt ns)
//	    participant I as init (PID 1)
//	    P->>I: config (queued in the socket before init exists)
//	    P->>H: clone NEWUSER|NEWNS
//	    H->>P: ready
//	    P->>P: newuidmap/newgidmap HOLDER_PID
//	    P->>H: maps-written (clone flags, time offsets)
//	    H->>I: clone NEWPID|NEWNS|NEWUTS|NEWIPC|NEWNET|NEWCGROUP
//	    H->>P: init-started (init's host PID; its netns held open by the holder)
//	    par init prepares the rootfs
//	    opt an OCI bundle's create hooks
//	    I->>P: create-hooks (mounts made, not pivoted)
//	    P->>P: prestart, createRuntime hooks on the host
//	    P->>I: create-hooks-run (init runs createContainer, then pivots)
//	    end
//	    I->>P: namespaces-ready (rootfs pivoted; + pty master for --console-socket)
//	    and user-mode network or published ports
//	    P->>H: state-prepare (tmpfs private to the holder)
//	    H->>P: state-prepared
//	    P->>P: start slirp4netns or gvisor (RootlessKit driver)
//	    P->>H: net-start (driver child side; tap address and route)
//	    H->>P: net-started
//	    P->>H: ports-start (port driver child side)
//	    end
//	    P->>P: oci create: wait at the start gate for oci start
//	    P->>I: network-ready (init runs startContainer hooks, then the command)
//	    I->>P: started (+ pty master) | execing, then hang-up on exec
//	    P->>P: poststart hooks
//	    H->>P: exit (init's wait status)
//	    P->>H: hang-up (the holder exits; it held the namespaces until then)
//
// Any stage that fails sends error with the exit status the runner should
// use (125 set-up, 126 cannot execute, 127 not found) and exits.
//
// # Lifetimes
//
// The holder, or a directly started init, has SIGKILL as parent-death
// signal, tied to the runner thread that forked it (kept locked for the
// child's life); init sets the same again at its start, against its
// parent, because the signal does not survive init's own execve. Until
// then, a runner that died leaves init reading from a closed channel, and
// it exits. Killing the runner therefore kills the holder, then init, and
// with PID 1 gone the kernel kills the whole PID namespace.
// Every stage marks its descriptors from 3 up close-on-exec first.
package userns
