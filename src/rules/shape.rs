//! Applying the rules to a tree: the view that `dump` prints, `show`
//! compares and `explain` tells the story of.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Action, RuleSet, Token};
use crate::machine::Machine;
use crate::render;
use crate::select::{Population, Subjects};
use crate::snapshot::ContainerId;
use crate::tree::Tree;

/// What the visibility rules decided for one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No visibility rule applies.
    Shown,
    /// Hidden by rule `rule`; `ancestor` is the tree index of the ancestor
    /// that matched, for hide-tree and hide-children.
    Hidden {
        rule: usize,
        ancestor: Option<usize>,
    },
    /// A `once` rule applies and this is the first of its identical siblings.
    ShownOnce { rule: usize },
    /// A `once` rule applies and `first` (a tree index) is already shown.
    Duplicate { rule: usize, first: usize },
}

impl Decision {
    pub fn is_shown(&self) -> bool {
        matches!(self, Decision::Shown | Decision::ShownOnce { .. })
    }
}

/// One transform that changed a cmdline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrite {
    pub rule: usize,
    pub before: String,
    pub after: String,
}

/// One printed line of a dump. Its text is made when printed (`text`),
/// not kept: a dump of 10,000 processes would hold it twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub depth: usize,
    pub pid: u32,
    pub ppid: u32,
    pub user: Arc<str>,
    pub cmdline: Arc<str>,
    /// The systemd unit, cgroup and container, when the cgroup was read;
    /// boxed, as most commands never read them.
    pub placement: Option<Box<Placement>>,
}

impl Line {
    /// The line as a dump prints it.
    pub fn text(&self) -> String {
        render::line(self.depth, &self.cmdline, &self.user)
    }
}

/// `dump --format json`'s object: the fields, the text as `line`, and the
/// placement's fields where known.
impl serde::Serialize for Line {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("depth", &self.depth)?;
        map.serialize_entry("pid", &self.pid)?;
        map.serialize_entry("ppid", &self.ppid)?;
        map.serialize_entry("user", &*self.user)?;
        map.serialize_entry("cmdline", &*self.cmdline)?;
        map.serialize_entry("line", &self.text())?;
        if let Some(placement) = &self.placement {
            if let Some(unit) = &placement.unit {
                map.serialize_entry("unit", unit)?;
            }
            map.serialize_entry("cgroup", &placement.cgroup)?;
            if let Some(container) = &placement.container {
                map.serialize_entry("container", container)?;
            }
        }
        map.end()
    }
}

/// Where a line's process belongs, as its cgroup says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub unit: Option<String>,
    pub cgroup: String,
    pub container: Option<Container>,
}

/// A container as `dump --format json` and the API show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Container {
    pub runtime: &'static str,
    pub id: String,
    /// The runtime's name for it, where it keeps one.
    pub name: Option<String>,
}

impl Container {
    pub fn of(id: &ContainerId, machine: &Machine) -> Container {
        Container {
            runtime: id.runtime,
            id: id.id.clone(),
            name: machine.container_name(id).map(str::to_string),
        }
    }
}

/// The tree after the rules: per process its final cmdline, its decision
/// and the rewrites that led there, and the lines in print order.
pub struct View {
    pub tree: Tree,
    /// Shared with the lines that print them.
    pub cmdlines: Vec<Arc<str>>,
    pub decisions: Vec<Decision>,
    pub rewrites: Vec<Vec<Rewrite>>,
    pub lines: Vec<Line>,
}

impl View {
    /// The dump text: what a baseline file holds, newline-terminated.
    pub fn text(&self) -> String {
        let size = self
            .lines
            .iter()
            .map(|l| render::line_len(l.depth, &l.cmdline, &l.user) + 1)
            .sum();
        let mut out = Vec::with_capacity(size);
        self.write_text(&mut out).expect("a Vec takes every write");
        String::from_utf8(out).expect("lines are made of strings")
    }

    /// `text`, written to `out` a line at a time rather than held whole.
    pub fn write_text(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        let mut text = String::new();
        for line in &self.lines {
            text.clear();
            render::push_line(&mut text, line.depth, &line.cmdline, &line.user);
            text.push('\n');
            out.write_all(text.as_bytes())?;
        }
        Ok(())
    }
}

/// The tree's processes as the match language sees them, with their
/// cmdlines as the transforms left them. While transforms run (in
/// preorder, so a parent is done before its children), `current` holds
/// the cmdline of the process being transformed.
struct Shaping<'a> {
    tree: &'a Tree,
    population: &'a Population<'a>,
    cmdlines: &'a [Arc<str>],
    current: Option<(usize, &'a str)>,
}

impl Shaping<'_> {
    /// What `{exe}`, `{unit}` and `{container}` say of process `i`.
    fn identity(&self, i: usize, token: Token) -> String {
        let process = &self.tree.processes[i];
        let cgroup = process.cgroup.as_deref();
        match token {
            Token::Exe => process.exe_path().unwrap_or("?").to_string(),
            Token::Unit => cgroup
                .and_then(|c| c.unit.clone())
                .unwrap_or_else(|| "-".into()),
            // A stable placeholder where the runtime keeps no name: its
            // ids change whenever a container is made anew.
            Token::Container => self
                .container(i)
                .and_then(|c| self.population.machine.container_name(c))
                .unwrap_or("<ID>")
                .to_string(),
        }
    }

    /// The container process `i` runs in, or, outside any, the one all its
    /// children run in (a runtime's shim).
    fn container(&self, i: usize) -> Option<&ContainerId> {
        let of = |j: usize| self.tree.processes[j].cgroup.as_ref()?.container.as_ref();
        of(i).or_else(|| {
            let mut children = self.tree.children(i).iter().map(|&c| of(c));
            let first = children.next()??;
            children.all(|c| c == Some(first)).then_some(first)
        })
    }
}

impl Subjects for Shaping<'_> {
    fn population(&self) -> &Population<'_> {
        self.population
    }

    fn cmdline(&self, i: usize) -> &str {
        match self.current {
            Some((at, cmdline)) if at == i => cmdline,
            _ => &self.cmdlines[i],
        }
    }
}

/// Applies `rules` to the processes of `tree`, on the machine `host`.
pub fn shape(mut tree: Tree, rules: &RuleSet, machine: &Machine) -> View {
    let n = tree.len();
    let preorder = tree.preorder();
    let population = Population::new(&tree.processes, tree.parents(), machine);
    let (cmdlines, rewrites) = transform_all(&tree, &preorder, &population, rules);

    // For each visibility rule, whether each process matches it, and the
    // nearest ancestor that does; one pass in preorder, so no walk up the
    // tree per process. A tree is hidden only through processes that run:
    // a running process below a stopped one (a user's `sshd: USER@notty`
    // held by SIGSTOP once its client has gone, so the session never
    // ends) is not hidden by an ancestor's rule. A stopped job (Ctrl-Z)
    // stops its whole group, and stays hidden.
    let stopped: Vec<bool> = tree
        .processes
        .iter()
        .map(|p| machine.held_stopped(p))
        .collect();
    let visibility: Vec<usize> = (0..rules.rules.len())
        .filter(|&r| !rules.rules[r].action.is_transform())
        .collect();
    let mut decisions = vec![Decision::Shown; n];
    let mut self_match = vec![false; n];
    let mut nearest = vec![None::<usize>; n];
    let mut decided = vec![false; n];
    let subjects = Shaping {
        tree: &tree,
        population: &population,
        cmdlines: &cmdlines,
        current: None,
    };
    for &r in &visibility {
        let rule = &rules.rules[r];
        for &i in &preorder {
            self_match[i] = rule.selector.matches(&subjects, i);
            nearest[i] = tree.parent(i).and_then(|p| {
                if self_match[p] {
                    Some(p)
                } else if stopped[p] && !stopped[i] {
                    None
                } else {
                    nearest[p]
                }
            });
        }
        for i in 0..n {
            if decided[i] {
                continue;
            }
            let decision = match rule.action {
                Action::Hide if self_match[i] => Some(Decision::Hidden {
                    rule: r,
                    ancestor: None,
                }),
                Action::HideTree if self_match[i] => Some(Decision::Hidden {
                    rule: r,
                    ancestor: None,
                }),
                Action::HideTree | Action::HideChildren if nearest[i].is_some() => {
                    Some(Decision::Hidden {
                        rule: r,
                        ancestor: nearest[i],
                    })
                }
                Action::Once if self_match[i] => Some(Decision::ShownOnce { rule: r }),
                _ => None,
            };
            if let Some(d) = decision {
                decisions[i] = d;
                decided[i] = true;
            }
        }
    }

    drop(population);

    // A subtree takes part in the sort only when it prints something, so a
    // short-lived hidden child (a cron job) never reorders its siblings.
    let mut keep: Vec<bool> = decisions.iter().map(Decision::is_shown).collect();
    for &i in preorder.iter().rev() {
        if keep[i]
            && let Some(p) = tree.parent(i)
        {
            keep[p] = true;
        }
    }
    let processes = std::mem::take(&mut tree.processes);
    tree.prune_and_sort(&keep, |i| (&*cmdlines[i], &*processes[i].user));
    tree.processes = processes;

    let lines = emit_lines(&tree, &cmdlines, &mut decisions, machine);
    View {
        tree,
        cmdlines,
        decisions,
        rewrites,
        lines,
    }
}

/// Every process's cmdline after the transforms, and the trace of each
/// change; parents first, so a rule's `parent` sees the final cmdline.
fn transform_all(
    tree: &Tree,
    preorder: &[usize],
    population: &Population,
    rules: &RuleSet,
) -> (Vec<Arc<str>>, Vec<Vec<Rewrite>>) {
    let transforms: Vec<usize> = (0..rules.rules.len())
        .filter(|&r| rules.rules[r].action.is_transform())
        .collect();
    let n = tree.len();
    let mut cmdlines: Vec<Arc<str>> = vec![Arc::from(""); n];
    let mut rewrites = vec![Vec::new(); n];
    for &i in preorder {
        let mut cmdline = render::cmdline(&tree.processes[i]);
        for &r in &transforms {
            let rule = &rules.rules[r];
            let subjects = Shaping {
                tree,
                population,
                cmdlines: &cmdlines,
                current: Some((i, &cmdline)),
            };
            if rule.selector.matches(&subjects, i) {
                let after = rule
                    .action
                    .transform(&cmdline, &|token| subjects.identity(i, token));
                if after != cmdline {
                    rewrites[i].push(Rewrite {
                        rule: r,
                        before: std::mem::replace(&mut cmdline, after.clone()),
                        after,
                    });
                }
            }
        }
        // A transform's text, or an executable's path it filled in, must
        // not break the one-line-per-process format.
        if cmdline.chars().any(|c| render::visible(c) != c) {
            cmdline = cmdline.chars().map(render::visible).collect();
        }
        cmdlines[i] = Arc::from(cmdline);
    }
    (cmdlines, rewrites)
}

/// Walks the sorted tree and prints the shown processes; a `once` process
/// that repeats an earlier sibling (same parent, user and cmdline) becomes
/// a duplicate here, where the sibling order is final.
fn emit_lines(
    tree: &Tree,
    cmdlines: &[Arc<str>],
    decisions: &mut [Decision],
    machine: &Machine,
) -> Vec<Line> {
    let shown = decisions.iter().filter(|d| d.is_shown()).count();
    let mut lines = Vec::with_capacity(shown + 1);
    lines.push(Line {
        depth: 0,
        pid: 0,
        ppid: 0,
        user: Arc::from(render::ROOT_USER),
        cmdline: Arc::from(render::ROOT_CMDLINE),
        placement: None,
    });
    let mut first_of: HashMap<(Option<usize>, &str, &str), usize> = HashMap::new();
    for i in tree.preorder() {
        let process = &tree.processes[i];
        if let Decision::ShownOnce { rule } = decisions[i] {
            let key = (tree.parent(i), &*process.user, &*cmdlines[i]);
            let first = *first_of.entry(key).or_insert(i);
            if first != i {
                decisions[i] = Decision::Duplicate { rule, first };
            }
        }
        if decisions[i].is_shown() {
            let depth = tree.depth(i);
            lines.push(Line {
                depth,
                pid: process.pid,
                ppid: process.ppid,
                user: process.user.clone(),
                cmdline: cmdlines[i].clone(),
                placement: process.cgroup.as_deref().map(|c| {
                    Box::new(Placement {
                        unit: c.unit.clone(),
                        cgroup: c.path.clone(),
                        container: c.container.as_ref().map(|id| Container::of(id, machine)),
                    })
                }),
            });
        }
    }
    lines
}
