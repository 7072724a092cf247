//! Hand edits of a baseline's text (`psdiff manual`): a line added or
//! removed among the children of its `INIT` line, placed where a dump
//! would place it, so the edited file reads as if written.

use super::Baseline;
use crate::render;

/// Depth of a child of INIT.
const DEPTH: usize = 2;

/// Why an edit changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unchanged {
    /// The baseline has no `  INIT  {user=...}` line to edit under.
    NoInit,
    /// The line to add is under INIT already.
    Present(String),
    /// The line to remove is not under INIT.
    Absent(String),
}

/// A removal: the new text, how many times the line was there, and how
/// many lines under it went with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub text: String,
    pub line: String,
    pub times: usize,
    pub under: usize,
}

impl Baseline {
    /// The text with `cmdline` of `user` added as a child of INIT,
    /// before the first sibling that sorts after it; and that line.
    pub fn add_under_init(&self, cmdline: &str, user: &str) -> Result<(String, String), Unchanged> {
        let lines: Vec<&str> = self.lines().collect();
        let target = render::line(DEPTH, cmdline, user);
        let init = init_line(&lines).ok_or(Unchanged::NoInit)?;
        let end = subtree_end(&lines, init);
        if lines[init + 1..end].contains(&target.as_str()) {
            return Err(Unchanged::Present(target));
        }
        let at = insert_position(&lines, init, end, cmdline, user);
        let mut edited = lines.clone();
        edited.insert(at, &target);
        Ok((text_of(&edited), target))
    }

    /// The text with every child of INIT that is `cmdline` of `user`
    /// removed, with the lines under it.
    pub fn remove_under_init(&self, cmdline: &str, user: &str) -> Result<Removed, Unchanged> {
        let lines: Vec<&str> = self.lines().collect();
        let target = render::line(DEPTH, cmdline, user);
        let init = init_line(&lines).ok_or(Unchanged::NoInit)?;
        let end = subtree_end(&lines, init);
        let mut edited = Vec::with_capacity(lines.len());
        let (mut times, mut under) = (0, 0);
        let mut i = 0;
        while i < lines.len() {
            if i > init && i < end && lines[i] == target {
                let skip_to = subtree_end(&lines, i);
                times += 1;
                under += skip_to - i - 1;
                i = skip_to;
            } else {
                edited.push(lines[i]);
                i += 1;
            }
        }
        if times == 0 {
            return Err(Unchanged::Absent(target));
        }
        Ok(Removed {
            text: text_of(&edited),
            line: target,
            times,
            under,
        })
    }
}

fn text_of(lines: &[&str]) -> String {
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

fn init_line(lines: &[&str]) -> Option<usize> {
    lines
        .iter()
        .position(|l| render::parse_line(l).is_some_and(|p| p.depth == 1 && p.cmdline == "INIT"))
}

fn depth(line: &str) -> usize {
    render::parse_line(line).map_or(0, |p| p.depth)
}

/// The index after the last line under `lines[at]`.
fn subtree_end(lines: &[&str], at: usize) -> usize {
    let d = depth(lines[at]);
    lines[at + 1..]
        .iter()
        .position(|l| depth(l) <= d)
        .map_or(lines.len(), |i| at + 1 + i)
}

/// Where a new child of INIT goes: before the first sibling that sorts
/// after it (by cmdline, then user), as the dump would place it.
fn insert_position(lines: &[&str], init: usize, end: usize, cmdline: &str, user: &str) -> usize {
    let mut i = init + 1;
    while i < end {
        if let Some(p) = render::parse_line(lines[i])
            && p.depth == DEPTH
            && (p.cmdline, p.user) > (cmdline, user)
        {
            return i;
        }
        i = subtree_end(lines, i);
    }
    end
}
