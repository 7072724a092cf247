//! Parent links and the deterministic sibling order.
//!
//! Nothing here recurses: a hostile user can build a chain of processes
//! thousands deep, and walking it must not overflow the stack.

use std::cmp::Ordering;

use crate::snapshot::Process;

/// Processes linked to their parents. The root line of a dump is not a
/// process; the processes hanging under it are `top()`, at depth 1.
#[derive(Debug, Clone)]
pub struct Tree {
    pub processes: Vec<Process>,
    parent: Vec<Option<usize>>,
    children: Vec<Vec<usize>>,
    top: Vec<usize>,
    depth: Vec<usize>,
    /// (pid, index), sorted by pid: a third of a HashMap's memory.
    by_pid: Vec<(u32, usize)>,
}

/// The index of `pid` in `by_pid`, (pid, index) pairs sorted by pid.
fn find(by_pid: &[(u32, usize)], pid: u32) -> Option<usize> {
    let at = by_pid.binary_search_by_key(&pid, |&(pid, _)| pid).ok()?;
    Some(by_pid[at].1)
}

impl Tree {
    /// Links every process to its parent. A process whose parent is gone,
    /// or whose ppid now names a younger process (the pid was reused while
    /// we read), hangs under the root, as does one caught in a cycle.
    pub fn build(processes: Vec<Process>) -> Tree {
        let n = processes.len();
        let mut by_pid: Vec<(u32, usize)> = processes
            .iter()
            .enumerate()
            .map(|(i, p)| (p.pid, i))
            .collect();
        // A snapshot comes sorted; other sources need not.
        if !by_pid.is_sorted() {
            by_pid.sort_unstable();
        }
        let mut parent: Vec<Option<usize>> = processes
            .iter()
            .map(|p| {
                let i = find(&by_pid, p.ppid)?;
                let candidate = &processes[i];
                (p.ppid != p.pid && candidate.start_time <= p.start_time).then_some(i)
            })
            .collect();
        break_cycles(&mut parent);

        let mut children = vec![Vec::new(); n];
        let mut top = Vec::new();
        for (i, p) in parent.iter().enumerate() {
            match p {
                Some(p) => children[*p].push(i),
                None => top.push(i),
            }
        }
        let mut tree = Tree {
            processes,
            parent,
            children,
            top,
            depth: vec![0; n],
            by_pid,
        };
        for i in tree.preorder() {
            tree.depth[i] = tree.parent[i].map_or(1, |p| tree.depth[p] + 1);
        }
        tree
    }

    pub fn len(&self) -> usize {
        self.processes.len()
    }

    pub fn index_of(&self, pid: u32) -> Option<usize> {
        find(&self.by_pid, pid)
    }

    pub fn parent(&self, i: usize) -> Option<usize> {
        self.parent[i]
    }

    /// Every process's parent index, by index.
    pub fn parents(&self) -> &[Option<usize>] {
        &self.parent
    }

    pub fn children(&self, i: usize) -> &[usize] {
        &self.children[i]
    }

    /// Depth in the dump: the root line is 0, pid 1 is 1.
    pub fn depth(&self, i: usize) -> usize {
        self.depth[i]
    }

    /// Every process, each after its parent, siblings in their current order.
    pub fn preorder(&self) -> Vec<usize> {
        let mut order = Vec::with_capacity(self.len());
        let mut stack: Vec<usize> = self.top.iter().rev().copied().collect();
        while let Some(i) = stack.pop() {
            order.push(i);
            stack.extend(self.children[i].iter().rev());
        }
        order
    }

    /// Drops from the child lists every process for which `keep` is false,
    /// then sorts siblings: by cmdline, then user, then number of (kept)
    /// children, then their sorted children, compared in turn. Parents and
    /// depths stay as they were, so a dropped process still counts for its
    /// descendants' depth.
    pub fn prune_and_sort<'a>(&mut self, keep: &[bool], key: impl Fn(usize) -> (&'a str, &'a str)) {
        let order = self.preorder();
        for list in self
            .children
            .iter_mut()
            .chain(std::iter::once(&mut self.top))
        {
            list.retain(|&c| keep[c]);
        }
        let children = &mut self.children;
        for &i in order.iter().rev() {
            let mut list = std::mem::take(&mut children[i]);
            list.sort_by(|&a, &b| compare_subtrees(children, &key, a, b));
            children[i] = list;
        }
        let mut top = std::mem::take(&mut self.top);
        top.sort_by(|&a, &b| compare_subtrees(&self.children, &key, a, b));
        self.top = top;
    }
}

/// Lexicographic comparison of two sorted subtrees, without recursion.
fn compare_subtrees<'a>(
    children: &[Vec<usize>],
    key: &impl Fn(usize) -> (&'a str, &'a str),
    a: usize,
    b: usize,
) -> Ordering {
    let mut stack = vec![(a, b)];
    while let Some((x, y)) = stack.pop() {
        let order = key(x)
            .cmp(&key(y))
            .then(children[x].len().cmp(&children[y].len()));
        if order != Ordering::Equal {
            return order;
        }
        stack.extend(
            children[x]
                .iter()
                .zip(&children[y])
                .rev()
                .map(|(&cx, &cy)| (cx, cy)),
        );
    }
    Ordering::Equal
}

/// A ppid chain that loops never reaches the root; cut each loop at the
/// first process found in it, which then hangs under the root.
fn break_cycles(parent: &mut [Option<usize>]) {
    const UNSEEN: u8 = 0;
    const ON_PATH: u8 = 1;
    const DONE: u8 = 2;
    let mut mark = vec![UNSEEN; parent.len()];
    let mut path = Vec::new();
    for start in 0..parent.len() {
        let mut i = start;
        while mark[i] == UNSEEN {
            mark[i] = ON_PATH;
            path.push(i);
            match parent[i] {
                Some(p) if mark[p] == ON_PATH => {
                    parent[i] = None;
                    break;
                }
                Some(p) => i = p,
                None => break,
            }
        }
        for j in path.drain(..) {
            mark[j] = DONE;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::test_process;

    fn proc(pid: u32, ppid: u32, start_time: u64) -> Process {
        Process {
            start_time,
            ..test_process(pid, ppid)
        }
    }

    #[test]
    fn orphans_reused_pids_and_cycles_hang_under_the_root() {
        let tree = Tree::build(vec![
            proc(1, 0, 1),
            proc(10, 1, 5),
            proc(11, 999, 5), // parent gone
            proc(12, 13, 5),  // ppid names a process that started later
            proc(13, 1, 9),
            proc(20, 21, 5), // cycle 20 -> 21 -> 20, cut at 21
            proc(21, 20, 5),
        ]);
        let top: Vec<u32> = tree.top.iter().map(|&i| tree.processes[i].pid).collect();
        assert_eq!(top, vec![1, 11, 12, 21]);
        assert_eq!(tree.depth(tree.index_of(10).unwrap()), 2);
        assert_eq!(tree.depth(tree.index_of(20).unwrap()), 2);
        assert_eq!(tree.preorder().len(), 7);
    }

    #[test]
    fn deep_chain_does_not_recurse() {
        let n = 100_000u32;
        let procs = (1..=n).map(|pid| proc(pid, pid - 1, 1)).collect();
        let mut tree = Tree::build(procs);
        assert_eq!(tree.depth(tree.index_of(n).unwrap()), n as usize);
        let keep = vec![true; n as usize];
        tree.prune_and_sort(&keep, |_| ("same", "root"));
    }
}
