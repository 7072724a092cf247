// SPDX-License-Identifier: MIT OR GPL-2.0
//
// psdiff watch --backend ebpf: every fork, exec and exit of every process,
// and at exec what the kernel itself knows of the new program (its file,
// argv, credentials and cgroup), read before the program runs a single
// instruction. A process that lives a millisecond is still named; over
// the proc connector its /proc entry may be gone before it is read.
//
// Built by src/bpf/build.sh into watch.bpf.o, which is committed: psdiff
// builds without clang. CI rebuilds it and checks the bytes are the same.
// Attach points are BTF raw tracepoints, as in src/files/bpf/files.bpf.c;
// field offsets are CO-RE relocations against the running kernel's BTF.

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#define TASK_COMM_LEN 16
#define NAME_MAX 256    // a path component, its NUL included
#define EXE_PARTS 32    // components of the program's path
#define EXE_END 4096    // where the program's path must end
#define CGROUP_PARTS 16 // levels of the cgroup
#define CGROUP_END 6144 // where the cgroup's path must end
#define ARGV_MAX 4096   // bytes of argv sent (a power of two)
#define DATA_MASK 8191  // offsets into data, masked for the verifier

// What an event is; mirrored in src/watch/ebpf.rs.
enum kind {
	K_FORK = 1, // pid = the child, ppid = its parent, start_ns, argv
	K_EXEC = 2, // everything
	K_EXIT = 3, // pid, status
};

// The program's path and the cgroup's are sent as their components, the
// last first, each ending in a NUL: walking up the tree is all the
// verifier allows. argv follows, as the process's memory holds it.
struct event {
	__u64 time_ns; // CLOCK_MONOTONIC
	__u64 start_ns; // the process's start, CLOCK_BOOTTIME
	__u32 kind;
	__u32 pid; // thread-group id: the process
	__u32 ppid;
	__u32 status; // the wait status of an exit
	__u32 uid[4]; // real, effective, saved, filesystem
	__u32 gid[4];
	__u16 exe_len;
	__u16 cgroup_len;
	__u16 argv_len;
	__u16 truncated; // 1: the path, 2: the cgroup, 4: argv
	// What the kernel attests of the program (src/snapshot/attest.rs), for
	// one gone before /proc could be looked at:
	__u64 exe_ino; // its file's inode
	__u32 exe_dev; // and device, as the kernel numbers it
	__u32 userns_owner; // who made its user namespace (uid)
	__u32 attest; // enum attest's bits
	__u32 unused;
	char comm[TASK_COMM_LEN];
	char data[DATA_MASK + 1 + ARGV_MAX];
};

#define HEADER_SIZE __builtin_offsetof(struct event, data)

enum attest {
	A_PRELOAD = 1, // the environment sets LD_PRELOAD
	A_AUDIT = 2, // ... or LD_AUDIT
	A_ENV_UNREAD = 4, // it was not read to its end
	A_OWN_USERNS = 8, // a user namespace, not the host's
};

#define ENV_STEPS 512 // strings of the environment, or pieces of long ones
#define ENV_PIECE 64

// Minimal kernel types; CO-RE relocates their fields.
typedef struct {
	__u32 val;
} kuid_t;

typedef struct {
	__u32 val;
} kgid_t;

struct user_namespace {
	int level;
	kuid_t owner;
} __attribute__((preserve_access_index));

struct cred {
	struct user_namespace *user_ns;
	kuid_t uid;
	kgid_t gid;
	kuid_t suid;
	kgid_t sgid;
	kuid_t euid;
	kgid_t egid;
	kuid_t fsuid;
	kgid_t fsgid;
} __attribute__((preserve_access_index));

struct qstr {
	const unsigned char *name;
} __attribute__((preserve_access_index));

struct dentry {
	struct dentry *d_parent;
	struct qstr d_name;
} __attribute__((preserve_access_index));

struct vfsmount {
	struct dentry *mnt_root;
} __attribute__((preserve_access_index));

struct mount {
	struct mount *mnt_parent;
	struct dentry *mnt_mountpoint;
	struct vfsmount mnt;
} __attribute__((preserve_access_index));

struct path {
	struct vfsmount *mnt;
	struct dentry *dentry;
} __attribute__((preserve_access_index));

struct super_block {
	__u32 s_dev;
} __attribute__((preserve_access_index));

struct inode {
	unsigned long i_ino;
	struct super_block *i_sb;
} __attribute__((preserve_access_index));

struct file {
	struct path f_path;
	struct inode *f_inode;
} __attribute__((preserve_access_index));

struct linux_binprm {
	struct file *file;
} __attribute__((preserve_access_index));

struct kernfs_node {
	__u64 id;
	const char *name;
	struct kernfs_node *__parent;
} __attribute__((preserve_access_index));

// Before 6.15 the parent was `parent`.
struct kernfs_node___old {
	struct kernfs_node *parent;
} __attribute__((preserve_access_index));

struct cgroup {
	struct kernfs_node *kn;
} __attribute__((preserve_access_index));

struct css_set {
	struct cgroup *dfl_cgrp;
} __attribute__((preserve_access_index));

struct mm_struct {
	unsigned long arg_start;
	unsigned long arg_end;
	unsigned long env_start;
	unsigned long env_end;
} __attribute__((preserve_access_index));

struct ns_common {
	unsigned int inum;
} __attribute__((preserve_access_index));

struct pid_namespace {
	struct ns_common ns;
} __attribute__((preserve_access_index));

struct upid {
	int nr;
	struct pid_namespace *ns;
} __attribute__((preserve_access_index));

struct pid {
	unsigned int level;
	struct upid numbers[1];
} __attribute__((preserve_access_index));

struct task_struct {
	int pid;
	int tgid;
	struct task_struct *group_leader;
	struct pid *thread_pid;
	int exit_code;
	__u64 start_boottime;
	struct task_struct *real_parent;
	const struct cred *cred;
	struct css_set *cgroups;
	struct mm_struct *mm;
	char comm[TASK_COMM_LEN];
} __attribute__((preserve_access_index));

// Where the watcher runs, set by psdiff before attaching: a watcher in a
// container (systemd-nspawn -b, LXC) sees its own pids and cgroups.
struct config {
	__u32 ns_inum; // the inode of its pid namespace
	__u32 unused;
	__u64 cgroup_root; // the kernfs id of its cgroup namespace's root; 0: none
};

#define PID_NS_INIT_INO 0xEFFFFFFCU // the host's pid namespace
#define MAX_LEVEL 8                 // how deep a watcher's namespace may be

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} CONFIG SEC(".maps");

// Its size is set by psdiff at load (--ring-buffer).
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 24);
} EVENTS SEC(".maps");

// Events that found the ring buffer full, per CPU.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} LOST SEC(".maps");

// Where an exec is put together: too big for the stack.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct event);
} SCRATCH SEC(".maps");

// A full ring buffer is counted, never silent.
static __always_inline void count_lost(void)
{
	__u32 zero = 0;
	__u64 *lost = bpf_map_lookup_elem(&LOST, &zero);
	if (lost)
		*lost += 1;
}

static __always_inline void output(struct event *e, __u64 size)
{
	if (bpf_ringbuf_output(&EVENTS, e, size, 0) != 0)
		count_lost();
}

static __always_inline struct config *config(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&CONFIG, &zero);
}

// The process id of `task` in the watcher's pid namespace, as its /proc
// names it; 0 when the process is not in that namespace. A watcher cannot
// learn its namespace's depth from inside (its /proc and NS_GET_PARENT
// stop at it), so the depth is found here, by the namespace's inode.
static __always_inline __u32 ns_tgid(struct task_struct *task, struct config *cfg)
{
	if (cfg->ns_inum == PID_NS_INIT_INO)
		return BPF_CORE_READ(task, tgid);
	struct pid *pid = BPF_CORE_READ(task, group_leader, thread_pid);
	if (!pid)
		return 0;
	unsigned int level = BPF_CORE_READ(pid, level);
	for (__u32 i = 1; i <= MAX_LEVEL; i++) {
		if (i > level)
			return 0;
		void *upid = (void *)pid + bpf_core_field_offset(struct pid, numbers) +
			     i * bpf_core_type_size(struct upid);
		struct pid_namespace *ns = 0;
		bpf_probe_read_kernel(&ns, sizeof(ns), upid + bpf_core_field_offset(struct upid, ns));
		if (ns && BPF_CORE_READ(ns, ns.inum) == cfg->ns_inum) {
			int nr = 0;
			bpf_probe_read_kernel(&nr, sizeof(nr),
					      upid + bpf_core_field_offset(struct upid, nr));
			return nr;
		}
	}
	return 0;
}

static __always_inline struct event *scratch(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&SCRATCH, &zero);
}

// Where a walk up a tree stands. Each walk is a bpf_loop: its step is
// verified once, where an unrolled loop's branches multiply.
struct walk {
	struct dentry *dentry;
	struct vfsmount *vfsmnt;
	struct mount *mnt;
	struct kernfs_node *kn;
	__u64 cgroup_root;
	__u32 off;
	__u32 end;
};

// Appends one NUL-ended name at w->off; 1 (stop) when it does not fit.
static __always_inline int append(struct walk *w, const void *name, __u16 truncated)
{
	struct event *e = scratch();
	if (!e)
		return 1;
	__u32 off = w->off;
	if (off > w->end - NAME_MAX || off > DATA_MASK) {
		e->truncated |= truncated;
		return 1;
	}
	long n = bpf_probe_read_kernel_str(&e->data[off & DATA_MASK], NAME_MAX, name);
	if (n <= 0)
		return 1;
	w->off = off + n;
	return 0;
}

// One step of the program's path, as d_path walks it: up to each mount's
// root, then on from where that mount is mounted.
static long exe_step(__u32 i, void *ctx)
{
	// Fields of `walk` are copied out first: inside BPF_CORE_READ they
	// would be relocated against the kernel's types, which have no walk.
	struct walk *w = ctx;
	struct dentry *dentry = w->dentry;
	struct vfsmount *vfsmnt = w->vfsmnt;
	struct mount *mnt = w->mnt;
	struct dentry *parent = BPF_CORE_READ(dentry, d_parent);
	struct dentry *root = BPF_CORE_READ(vfsmnt, mnt_root);
	if (dentry == root || dentry == parent) {
		struct mount *up = BPF_CORE_READ(mnt, mnt_parent);
		if (up == mnt || !up)
			return 1;
		w->dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
		w->mnt = up;
		w->vfsmnt = (void *)up + bpf_core_field_offset(struct mount, mnt);
		return 0;
	}
	if (append(w, BPF_CORE_READ(dentry, d_name.name), 1))
		return 1;
	w->dentry = parent;
	return 0;
}

static __always_inline struct kernfs_node *kernfs_parent(struct kernfs_node *kn)
{
	if (bpf_core_field_exists(kn->__parent))
		return BPF_CORE_READ(kn, __parent);
	return BPF_CORE_READ((struct kernfs_node___old *)kn, parent);
}

// One level of the cgroup (v2), up to the root, which has no name.
static long cgroup_step(__u32 i, void *ctx)
{
	struct walk *w = ctx;
	struct kernfs_node *kn = w->kn;
	if (!kn || BPF_CORE_READ(kn, id) == w->cgroup_root)
		return 1;
	struct kernfs_node *parent = kernfs_parent(kn);
	if (!parent)
		return 1;
	if (append(w, BPF_CORE_READ(kn, name), 2))
		return 1;
	w->kn = parent;
	return 0;
}

// Where a look through the environment stands.
struct env_walk {
	unsigned long at;
	unsigned long end;
	__u32 at_start; // `at` begins a string
	__u32 found; // enum attest's bits
};

static __always_inline int is(const char *piece, const char *name, int len)
{
	for (int i = 0; i < len; i++)
		if (piece[i] != name[i])
			return 0;
	return piece[len] != 0; // set, to something
}

// One string of the environment, or the next piece of a long one: the
// loader's variables are found as it finds them.
static long env_step(__u32 i, void *ctx)
{
	struct env_walk *w = ctx;
	if (w->at >= w->end)
		return 1;
	char piece[ENV_PIECE] = {};
	long n = bpf_probe_read_user_str(piece, sizeof(piece), (void *)w->at);
	if (n <= 0) {
		w->found |= A_ENV_UNREAD;
		return 1;
	}
	if (w->at_start && is(piece, "LD_PRELOAD=", 11))
		w->found |= A_PRELOAD;
	if (w->at_start && is(piece, "LD_AUDIT=", 9))
		w->found |= A_AUDIT;
	// A piece that filled the buffer ends in the NUL the helper wrote.
	w->at_start = n < ENV_PIECE;
	w->at += w->at_start ? n : n - 1;
	return 0;
}

static __always_inline void header(struct event *e, __u32 kind, struct task_struct *task,
				   __u32 pid, struct config *cfg)
{
	e->time_ns = bpf_ktime_get_ns();
	e->start_ns = BPF_CORE_READ(task, start_boottime);
	e->kind = kind;
	e->pid = pid;
	e->ppid = ns_tgid(BPF_CORE_READ(task, real_parent), cfg);
	e->status = 0;
	e->exe_len = 0;
	e->cgroup_len = 0;
	e->argv_len = 0;
	e->truncated = 0;
	e->exe_ino = 0;
	e->exe_dev = 0;
	e->userns_owner = 0;
	e->attest = 0;
	e->unused = 0;
	BPF_CORE_READ_INTO(&e->comm, task, comm);
}

// Appends the argv that `mm` holds at `off` in e->data, as the current
// task's memory has it; returns how many bytes.
static __always_inline __u32 append_argv(struct event *e, __u32 off, struct mm_struct *mm)
{
	unsigned long start = BPF_CORE_READ(mm, arg_start);
	unsigned long end = BPF_CORE_READ(mm, arg_end);
	__u64 len = end > start ? end - start : 0;
	if (len > ARGV_MAX - 1) {
		len = ARGV_MAX - 1;
		e->truncated |= 4;
	}
	off &= DATA_MASK;
	len &= ARGV_MAX - 1;
	if (len > 0 && bpf_probe_read_user(&e->data[off], len, (void *)start) != 0)
		len = 0;
	e->argv_len = len;
	return len;
}

// An exit's event: the header alone, written in place in the ring
// buffer; nothing for a process outside the watcher's namespace.
static __always_inline void header_only(__u32 kind, struct task_struct *task, __u32 status)
{
	struct config *cfg = config();
	if (!cfg)
		return;
	__u32 pid = ns_tgid(task, cfg);
	if (!pid)
		return;
	struct event *e = bpf_ringbuf_reserve(&EVENTS, HEADER_SIZE, 0);
	if (!e) {
		count_lost();
		return;
	}
	header(e, kind, task, pid, cfg);
	e->status = status;
	__builtin_memset(e->uid, 0, sizeof(e->uid) + sizeof(e->gid));
	bpf_ringbuf_submit(e, 0);
}

// In the parent, before the child first runs. A new thread is not a
// process. The parent's argv as its memory holds it now (the child's is
// a copy) is the title it may have set after it was last read: cron's
// child calls itself CRON, then starts the job.
SEC("tp_btf/sched_process_fork")
int BPF_PROG(sched_process_fork, struct task_struct *parent, struct task_struct *child)
{
	if (child->pid != child->tgid)
		return 0;
	struct config *cfg = config();
	if (!cfg)
		return 0;
	__u32 pid = ns_tgid(child, cfg);
	struct event *e = scratch();
	if (!pid || !e)
		return 0;
	header(e, K_FORK, child, pid, cfg);
	__builtin_memset(e->uid, 0, sizeof(e->uid) + sizeof(e->gid));
	__u32 len = append_argv(e, 0, BPF_CORE_READ(parent, mm));
	output(e, HEADER_SIZE + len);
	return 0;
}

// After the new program is loaded and its argv written, before it runs.
SEC("tp_btf/sched_process_exec")
int BPF_PROG(sched_process_exec, struct task_struct *task, int old_pid, struct linux_binprm *bprm)
{
	struct config *cfg = config();
	if (!cfg)
		return 0;
	__u32 pid = ns_tgid(task, cfg);
	struct event *e = scratch();
	if (!pid || !e)
		return 0;
	header(e, K_EXEC, task, pid, cfg);
	const struct cred *cred = BPF_CORE_READ(task, cred);
	e->uid[0] = BPF_CORE_READ(cred, uid.val);
	e->uid[1] = BPF_CORE_READ(cred, euid.val);
	e->uid[2] = BPF_CORE_READ(cred, suid.val);
	e->uid[3] = BPF_CORE_READ(cred, fsuid.val);
	e->gid[0] = BPF_CORE_READ(cred, gid.val);
	e->gid[1] = BPF_CORE_READ(cred, egid.val);
	e->gid[2] = BPF_CORE_READ(cred, sgid.val);
	e->gid[3] = BPF_CORE_READ(cred, fsgid.val);
	struct user_namespace *userns = BPF_CORE_READ(cred, user_ns);
	if (BPF_CORE_READ(userns, level) != 0)
		e->attest |= A_OWN_USERNS;
	e->userns_owner = BPF_CORE_READ(userns, owner.val);
	struct file *file = BPF_CORE_READ(bprm, file);
	e->exe_ino = BPF_CORE_READ(file, f_inode, i_ino);
	e->exe_dev = BPF_CORE_READ(file, f_inode, i_sb, s_dev);
	struct mm_struct *mm = BPF_CORE_READ(task, mm);
	struct env_walk env = {
		.at = BPF_CORE_READ(mm, env_start),
		.end = BPF_CORE_READ(mm, env_end),
		.at_start = 1,
	};
	bpf_loop(ENV_STEPS, env_step, &env, 0);
	if (env.at < env.end)
		env.found |= A_ENV_UNREAD;
	e->attest |= env.found;
	struct walk w = {
		.dentry = BPF_CORE_READ(file, f_path.dentry),
		.vfsmnt = BPF_CORE_READ(file, f_path.mnt),
		.end = EXE_END,
	};
	w.mnt = (void *)w.vfsmnt - bpf_core_field_offset(struct mount, mnt);
	if (bpf_loop(EXE_PARTS, exe_step, &w, 0) == EXE_PARTS)
		e->truncated |= 1;
	e->exe_len = w.off;
	w.kn = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn);
	w.cgroup_root = cfg->cgroup_root;
	w.end = CGROUP_END;
	if (bpf_loop(CGROUP_PARTS, cgroup_step, &w, 0) == CGROUP_PARTS)
		e->truncated |= 2;
	e->cgroup_len = w.off - e->exe_len;
	__u32 off = w.off & DATA_MASK;
	__u32 len = append_argv(e, off, mm);
	output(e, HEADER_SIZE + off + len);
	return 0;
}

// When a process's leader thread exits (as the connector reports it).
SEC("tp_btf/sched_process_exit")
int BPF_PROG(sched_process_exit, struct task_struct *task)
{
	if (task->pid == task->tgid)
		header_only(K_EXIT, task, BPF_CORE_READ(task, exit_code));
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
