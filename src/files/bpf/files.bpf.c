// SPDX-License-Identifier: MIT OR GPL-2.0
//
// psdiff files --backend ebpf: the opens, failed opens, closes and
// descriptor copies of a process tree, with the thread and descriptor of
// each, and the tree itself followed in the kernel (fork, exec, exit), so
// a child is watched from its first instruction.
//
// Built by src/bpf/build.sh into files.bpf.o, which is committed: psdiff
// builds without clang. CI rebuilds it and checks the bytes are the same.
//
// Attach points are BTF raw tracepoints (tp_btf: sys_exit and
// sched_process_*): they need neither tracefs nor a kernel module, and
// read kernel structures by direct, fault-safe loads. Field offsets are
// CO-RE relocations against the running kernel's BTF, so one object
// serves every x86_64 kernel with BTF.
//
// One program per system call, at its exit: on x86_64 the arguments are
// still in pt_regs (the ABI preserves them) and orig_ax holds the call's
// number, so nothing needs keeping from the entry.

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

// x86_64 system call numbers.
#define NR_OPEN 2
#define NR_CLOSE 3
#define NR_DUP 32
#define NR_DUP2 33
#define NR_FCNTL 72
#define NR_CHDIR 80
#define NR_FCHDIR 81
#define NR_CREAT 85
#define NR_OPENAT 257
#define NR_DUP3 292
#define NR_CLOSE_RANGE 436
#define NR_OPENAT2 437

#define AT_FDCWD -100
#define F_DUPFD 0
#define F_SETFD 2
#define F_DUPFD_CLOEXEC 1030
#define O_WRONLY 01
#define O_CREAT 0100
#define O_TRUNC 01000
#define O_CLOEXEC 02000000
#define EBADF 9

#define PATH_MAX 4096
#define PREFIX_MAX 256
#define MAX_PREFIXES 8
#define MAX_NAMES 8
#define TASK_COMM_LEN 16

// What an event is; mirrored in src/files/ebpf.rs.
enum kind {
	K_OPEN = 1,       // fd = the new descriptor, arg = dirfd, path
	K_FAILED = 2,     // ret = -errno, arg = dirfd, path
	K_CLOSE = 3,      // fd
	K_DUP = 4,        // fd = new, arg = old, flags = O_CLOEXEC or 0
	K_SETFD = 5,      // fd, flags = O_CLOEXEC or 0
	K_CLOSE_RANGE = 6,// fd = first, arg = last, flags = close_range flags
	K_CHDIR = 7,      // path
	K_FCHDIR = 8,     // fd
	K_FORK = 9,       // pid = the child, ppid = the parent
	K_EXEC = 10,      // path = the program, comm = its name
	K_EXIT = 11,
};

struct event {
	__u64 time_ns; // CLOCK_MONOTONIC
	__u32 kind;
	__u32 pid; // thread-group id: the process
	__u32 tid;
	__u32 ppid; // set for K_FORK only
	__s32 fd;
	__s32 arg;
	__s64 ret;
	__u32 flags;
	__u32 path_len; // bytes of path sent, its NUL included
	char comm[TASK_COMM_LEN];
	char path[PATH_MAX];
};

#define HEADER_SIZE __builtin_offsetof(struct event, path)

// Minimal kernel types; CO-RE relocates their fields.
struct pt_regs {
	unsigned long dx;
	unsigned long si;
	unsigned long di;
	unsigned long orig_ax;
} __attribute__((preserve_access_index));

struct task_struct {
	int pid;
	int tgid;
	struct task_struct *real_parent;
	char comm[TASK_COMM_LEN];
} __attribute__((preserve_access_index));

struct linux_binprm {
	const char *filename;
} __attribute__((preserve_access_index));

struct watched {
	__u32 depth;
};

struct config {
	__u32 max_depth;
	__u32 prefixes;
	__u32 names;
	__u32 self;
};

struct prefix {
	__u32 len;
	char path[PREFIX_MAX];
};

struct name {
	char comm[TASK_COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct watched);
} WATCHED SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} CONFIG SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_PREFIXES);
	__type(key, __u32);
	__type(value, struct prefix);
} PREFIXES SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_NAMES);
	__type(key, __u32);
	__type(value, struct name);
} NAMES SEC(".maps");

// Its size is set by psdiff at load (--ring-buffer).
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} EVENTS SEC(".maps");

// Events that found the ring buffer full, per CPU.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} LOST SEC(".maps");

// Where an event is put together: too big for the stack.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct event);
} SCRATCH SEC(".maps");

static __always_inline struct config *config(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&CONFIG, &zero);
}

// A full ring buffer is counted, never silent.
static __always_inline void count_lost(void)
{
	__u32 zero = 0;
	__u64 *lost = bpf_map_lookup_elem(&LOST, &zero);
	if (lost)
		*lost += 1;
}

// The fields every event has. The name is read straight from the task:
// cheaper than a helper call, and this runs for every event.
static __always_inline void fill(struct event *e, __u32 kind, __u32 pid, __u32 tid)
{
	struct task_struct *task = bpf_get_current_task_btf();
	e->time_ns = bpf_ktime_get_ns();
	e->kind = kind;
	e->pid = pid;
	e->tid = tid;
	e->ppid = 0;
	e->fd = -1;
	e->arg = 0;
	e->ret = 0;
	e->flags = 0;
	e->path_len = 0;
	__builtin_memcpy(e->comm, task->comm, TASK_COMM_LEN);
}

// An event of `size` bytes (the header alone) written in place in the ring
// buffer. psdiff drains every millisecond, so nothing wakes it.
static __always_inline struct event *reserve(__u64 size)
{
	struct event *e = bpf_ringbuf_reserve(&EVENTS, size, 0);
	if (!e)
		count_lost();
	return e;
}

static __always_inline void submit(struct event *e)
{
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
}

// An event with a path, put together in SCRATCH: too big for the stack.
static __always_inline struct event *scratch(__u32 kind, __u32 pid, __u32 tid)
{
	__u32 zero = 0;
	struct event *e = bpf_map_lookup_elem(&SCRATCH, &zero);
	if (e)
		fill(e, kind, pid, tid);
	return e;
}

// Sends a SCRATCH event: the header and path_len bytes of the path.
static __always_inline void send(struct event *e)
{
	__u64 size = HEADER_SIZE + (e->path_len & (PATH_MAX - 1));
	if (e->path_len >= PATH_MAX)
		size = sizeof(*e);
	if (bpf_ringbuf_output(&EVENTS, e, size, BPF_RB_NO_WAKEUP) != 0)
		count_lost();
}

// Whether an absolute path lies under one of the --path prefixes (a
// relative one is resolved, and filtered, by psdiff).
static __always_inline int wanted(struct event *e, struct config *cfg)
{
	if (cfg->prefixes == 0 || e->path[0] != '/')
		return 1;
	for (__u32 i = 0; i < MAX_PREFIXES; i++) {
		if (i >= cfg->prefixes)
			break;
		__u32 key = i;
		struct prefix *p = bpf_map_lookup_elem(&PREFIXES, &key);
		if (!p)
			break;
		__u32 len = p->len;
		if (len >= PREFIX_MAX)
			continue;
		// Eight bytes at a time (little-endian: the first bytes are the
		// low ones); bytes past the prefix are masked off.
		int same = 1;
		for (__u32 at = 0; at < PREFIX_MAX; at += 8) {
			if (at >= len)
				break;
			__u64 a = *(__u64 *)&e->path[at];
			__u64 b = *(__u64 *)&p->path[at];
			if (len - at < 8) {
				__u64 mask = (1ULL << ((len - at) * 8)) - 1;
				a &= mask;
				b &= mask;
			}
			if (a != b) {
				same = 0;
				break;
			}
		}
		if (!same)
			continue;
		// "/etc" takes /etc and /etc/x, not /etcetera.
		char next = e->path[len & (PREFIX_MAX - 1)];
		if (next == 0 || next == '/' || (len > 0 && p->path[(len - 1) & (PREFIX_MAX - 1)] == '/'))
			return 1;
	}
	return 0;
}

static __always_inline int read_path(struct event *e, const char *user_path)
{
	long len = bpf_probe_read_user_str(e->path, sizeof(e->path), user_path);
	if (len <= 0) {
		e->path[0] = 0;
		len = 1;
	}
	e->path_len = len;
	return len;
}

// One of the opens. The path is read after the kernel has read it, so its
// pages are in memory; it is read into SCRATCH and sent at its length (a
// path read straight into a reservation of the largest size measured no
// faster, and made every event as large).
static __always_inline int opened(__u32 pid, __u32 tid, long ret, int dirfd, const char *path,
				  __u32 flags)
{
	struct config *cfg = config();
	if (!cfg)
		return 0;
	struct event *e = scratch(ret >= 0 ? K_OPEN : K_FAILED, pid, tid);
	if (!e)
		return 0;
	read_path(e, path);
	if (!wanted(e, cfg))
		return 0;
	e->ret = ret;
	e->arg = dirfd;
	e->flags = flags;
	if (ret >= 0)
		e->fd = ret;
	send(e);
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(sys_exit, struct pt_regs *regs, long ret)
{
	// Every system call of every task comes here: calls not followed, and
	// followed ones that changed no descriptor, leave before any map is read.
	long nr = regs->orig_ax;
	__u64 a0 = regs->di, a1 = regs->si, a2 = regs->dx;
	switch (nr) {
	case NR_OPEN:
	case NR_CREAT:
	case NR_OPENAT:
	case NR_OPENAT2:
		break;
	case NR_CLOSE:
		// A close of no descriptor closed nothing.
		if (ret == -EBADF)
			return 0;
		break;
	case NR_CLOSE_RANGE:
	case NR_CHDIR:
	case NR_FCHDIR:
		if (ret != 0)
			return 0;
		break;
	case NR_DUP:
	case NR_DUP3:
		if (ret < 0)
			return 0;
		break;
	case NR_DUP2:
		// dup2(fd, fd) copies nothing.
		if (ret < 0 || (int)a0 == (int)ret)
			return 0;
		break;
	case NR_FCNTL:
		if (ret < 0 || !(a1 == F_DUPFD || a1 == F_DUPFD_CLOEXEC || a1 == F_SETFD))
			return 0;
		break;
	default:
		return 0;
	}
	__u64 id = bpf_get_current_pid_tgid();
	__u32 pid = id >> 32, tid = (__u32)id;
	if (!bpf_map_lookup_elem(&WATCHED, &pid))
		return 0;
	// One call of opened() for the four opens: each copy of its path
	// filter would be verified again at load.
	if (nr == NR_OPEN || nr == NR_CREAT || nr == NR_OPENAT || nr == NR_OPENAT2) {
		int dirfd = AT_FDCWD;
		const char *path = (const char *)a0;
		__u64 flags = a1;
		if (nr == NR_CREAT)
			flags = O_CREAT | O_WRONLY | O_TRUNC;
		if (nr == NR_OPENAT || nr == NR_OPENAT2) {
			dirfd = a0;
			path = (const char *)a1;
			flags = a2;
		}
		if (nr == NR_OPENAT2) {
			// struct open_how starts with the flags.
			flags = 0;
			bpf_probe_read_user(&flags, sizeof(flags), (void *)a2);
		}
		return opened(pid, tid, ret, dirfd, path, flags);
	}
	switch (nr) {
	case NR_CHDIR: {
		struct event *e = scratch(K_CHDIR, pid, tid);
		if (!e)
			return 0;
		read_path(e, (const char *)a0);
		send(e);
		return 0;
	}
	}
	// The rest carry descriptors only.
	struct event *e = reserve(HEADER_SIZE);
	if (!e)
		return 0;
	fill(e, K_CLOSE, pid, tid);
	e->ret = ret;
	switch (nr) {
	case NR_CLOSE:
		e->fd = a0;
		break;
	case NR_CLOSE_RANGE:
		e->kind = K_CLOSE_RANGE;
		e->fd = a0;
		e->arg = a1 > 0x7fffffff ? 0x7fffffff : a1;
		e->flags = a2;
		break;
	case NR_FCHDIR:
		e->kind = K_FCHDIR;
		e->fd = a0;
		break;
	case NR_FCNTL:
		if (a1 == F_SETFD) {
			e->kind = K_SETFD;
			e->fd = a0;
			e->flags = (a2 & 1) ? O_CLOEXEC : 0;
			break;
		}
		e->kind = K_DUP;
		e->fd = ret;
		e->arg = a0;
		e->flags = a1 == F_DUPFD_CLOEXEC ? O_CLOEXEC : 0;
		break;
	default: // dup, dup2, dup3
		e->kind = K_DUP;
		e->fd = ret;
		e->arg = a0;
		if (nr == NR_DUP3)
			e->flags = a2 & O_CLOEXEC;
		break;
	}
	submit(e);
	return 0;
}

static __always_inline int named(struct config *cfg, char *comm)
{
	for (__u32 i = 0; i < MAX_NAMES; i++) {
		if (i >= cfg->names)
			break;
		__u32 key = i;
		struct name *n = bpf_map_lookup_elem(&NAMES, &key);
		if (!n)
			break;
		int same = 1;
		for (int j = 0; j < TASK_COMM_LEN; j++) {
			if (comm[j] != n->comm[j]) {
				same = 0;
				break;
			}
			if (comm[j] == 0)
				break;
		}
		if (same)
			return 1;
	}
	return 0;
}

// In the parent, before the child first runs: a child of a watched
// process is watched (within --depth) before its first system call.
SEC("tp_btf/sched_process_fork")
int BPF_PROG(sched_process_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 parent_pid = parent->tgid;
	__u32 child_pid = child->tgid;
	if (parent_pid == child_pid)
		return 0; // a thread: watched with its process
	struct watched *w = bpf_map_lookup_elem(&WATCHED, &parent_pid);
	struct config *cfg = config();
	if (!w || !cfg || child_pid == cfg->self)
		return 0;
	struct watched entry = {.depth = w->depth + 1};
	if (entry.depth > cfg->max_depth)
		return 0;
	bpf_map_update_elem(&WATCHED, &child_pid, &entry, BPF_ANY);
	struct event *e = reserve(HEADER_SIZE);
	if (!e)
		return 0;
	fill(e, K_FORK, child_pid, child->pid);
	e->ppid = parent_pid;
	submit(e);
	return 0;
}

// After the new program is loaded, its name set: a watched process's new
// name, or a process that becomes a target by its name (--name).
SEC("tp_btf/sched_process_exec")
int BPF_PROG(sched_process_exec, struct task_struct *task, int old_pid, struct linux_binprm *bprm)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 pid = id >> 32, tid = (__u32)id;
	struct config *cfg = config();
	if (!cfg || pid == cfg->self)
		return 0;
	__u32 ppid = 0;
	if (!bpf_map_lookup_elem(&WATCHED, &pid)) {
		char comm[TASK_COMM_LEN];
		bpf_get_current_comm(comm, sizeof(comm));
		if (!named(cfg, comm))
			return 0;
		struct watched entry = {.depth = 0};
		bpf_map_update_elem(&WATCHED, &pid, &entry, BPF_ANY);
		ppid = task->real_parent->tgid;
	}
	struct event *e = scratch(K_EXEC, pid, tid);
	if (!e)
		return 0;
	e->ppid = ppid;
	long len = bpf_probe_read_kernel_str(e->path, sizeof(e->path), bprm->filename);
	e->path_len = len > 0 ? len : 0;
	send(e);
	return 0;
}

// When a process's leader thread exits, the process ends (threads that
// outlive their leader are no longer watched).
SEC("tp_btf/sched_process_exit")
int BPF_PROG(sched_process_exit, struct task_struct *task)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 pid = id >> 32, tid = (__u32)id;
	if (pid != tid || !bpf_map_lookup_elem(&WATCHED, &pid))
		return 0;
	bpf_map_delete_elem(&WATCHED, &pid);
	struct event *e = reserve(HEADER_SIZE);
	if (!e)
		return 0;
	fill(e, K_EXIT, pid, tid);
	submit(e);
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
