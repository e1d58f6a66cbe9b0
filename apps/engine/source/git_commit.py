"""Writing to a repository from the clone cache: commits made on top of the remote branch
through a temporary index (the cache is bare), pushed, rebased and pushed again (a few times)
if the branch moved.
Mixed into RepoCache (git.py), whose git runner and locks it uses."""
from __future__ import annotations

import logging
import os
import random
import re
import tempfile
import time
from pathlib import PurePosixPath

from ..errors import SourceError
from .git_auth import GitCredentials
from .git_auth import split_url as _split_url

log = logging.getLogger(__name__)

PUSH_ATTEMPTS = 5
# What git prints when the remote branch moved between our fetch and push: refused as not a
# fast-forward, or two pushes racing for the ref on the server (the loser cannot lock it).
MOVED = ("[rejected]", "non-fast-forward", "fetch first", "cannot lock ref",
         "failed to update ref", "incorrect old value")
OBJECT_ID = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")
AUTHOR = re.compile(r"^\s*(?P<name>[^<>]+?)\s*<(?P<email>[^<>]*)>\s*$")


class Committing:
    """commit_files and revert_to for RepoCache (which provides _git, _locked, _init, _fetch,
    _local_commit, _commit_sha and repo_dir)."""

    def commit_files(self, url: str, branch: str, changes: dict[str, bytes | None], message: str,
                     author: str, creds: GitCredentials | None = None,
                     base: str | None = None) -> str:
        """Commit `changes` (path -> new content, or None to delete) on `branch` and push.

        `base` is the commit the changes were made from (the files read to make them); without
        it, the branch head at the time of the call. When the branch has moved past it, or a
        push is refused because someone pushed meanwhile, the commit is rebased onto the new
        head (a three-way merge, as `git rebase` does), so concurrent writers keep each other's
        commits and lines; an overlapping edit fails with SourceError naming the files, and
        nothing is pushed. Up to PUSH_ATTEMPTS pushes. Returns the new head sha (the head
        itself if it already holds the changes).
        """
        paths = {_check_repo_path(p): data for p, data in changes.items()}

        def tree_on(head: str) -> str:
            return self._tree_with(url, head, paths)
        return self._commit_and_push(url, branch, tree_on, message, author, creds,
                                     base=base, rebase=True)

    def revert_to(self, url: str, branch: str, target_sha: str, message: str, author: str,
                  creds: GitCredentials | None = None) -> str:
        """Commit, on top of `branch`, a tree equal to `target_sha`'s (undoing everything since)."""
        target = self._commit_sha(url, target_sha, creds)
        tree = self._git(["rev-parse", f"{target}^{{tree}}"], url).strip()
        return self._commit_and_push(url, branch, lambda head: tree, message, author, creds)

    # --- committing ---------------------------------------------------------------------------
    def _commit_and_push(self, url, branch, tree_on, message, author, creds, base=None,
                         rebase=False) -> str:
        """`rebase`: a refused commit is merged onto the new head; otherwise `tree_on` makes
        the tree again on it (a revert means "this tree", whatever came meanwhile)."""
        match = AUTHOR.match(author or "")
        if not match:
            raise SourceError(f"author {author!r} is not of the form 'Name <email>'")
        who = {"GIT_AUTHOR_NAME": match["name"], "GIT_AUTHOR_EMAIL": match["email"],
               "GIT_COMMITTER_NAME": match["name"], "GIT_COMMITTER_EMAIL": match["email"]}
        ref = f"refs/heads/{branch}"
        with self._locked(url):
            self._init(url)
            commit = None  # made and refused: rebased onto the next head
            for attempt in range(1, PUSH_ATTEMPTS + 1):
                self._fetch(url, creds)
                head = self._local_commit(url, ref)
                if head is None:
                    raise SourceError(f"branch {branch!r} not found in {_split_url(url)[0]}")
                if commit is None or not rebase:
                    parent = self._commit_sha(url, base, creds, locked=True) if base else head
                    tree = tree_on(parent)
                    if tree == self._tree(url, parent):
                        return head  # nothing to change: no empty commit
                    commit = self._git(["commit-tree", tree, "-p", parent, "-F", "-"], url,
                                       env=who, input=message.encode()).strip()
                if self._parent(url, commit) != head:
                    commit = self._rebased(url, commit, head, branch, who, message)
                    if commit is None:
                        return head  # the branch already holds these changes
                if self._push(url, commit, ref, creds):
                    self._git(["update-ref", ref, commit], url)
                    return commit
                log.info("push to %s %s refused (moved meanwhile, attempt %d)",
                         _split_url(url)[0], branch, attempt)
                if attempt < PUSH_ATTEMPTS:
                    time.sleep(random.uniform(0.05, 0.2) * attempt)  # out of step with others
        raise SourceError(f"push to {branch!r} of {_split_url(url)[0]} refused {PUSH_ATTEMPTS} "
                          "times: the branch kept moving; nothing was pushed")

    def _rebased(self, url, commit, head, branch, who, message) -> str | None:
        """`commit` replayed on `head` (three-way merge with its parent as base), or None when
        that changes nothing; SourceError naming the files both sides changed differently."""
        try:
            tree = self._git(["merge-tree", "--write-tree", "--name-only", "--no-messages",
                              head, commit], url).split("\n", 1)[0].strip()
        except SourceError as exc:
            # A conflict prints the tree's id, then the conflicted paths (--name-only).
            lines = [ln.strip() for ln in getattr(exc, "output", "").splitlines() if ln.strip()]
            if not any(OBJECT_ID.match(ln) for ln in lines):
                raise  # not a conflict: git's own message says what failed
            paths = dict.fromkeys(ln for ln in lines if not OBJECT_ID.match(ln))
            raise SourceError(f"cannot rebase the commit onto {branch}: someone else changed "
                              f"the same lines of {', '.join(paths) or 'its files'} meanwhile; "
                              "nothing was pushed") from None
        if tree == self._tree(url, head):
            return None
        return self._git(["commit-tree", tree, "-p", head, "-F", "-"], url, env=who,
                         input=message.encode()).strip()

    def _tree(self, url: str, commit: str) -> str:
        return self._git(["rev-parse", f"{commit}^{{tree}}"], url).strip()

    def _parent(self, url: str, commit: str) -> str:
        return self._git(["rev-parse", f"{commit}^"], url).strip()

    def _push(self, url, commit, ref, creds) -> bool:
        """Push; False when refused because the branch moved (any other refusal raises)."""
        try:
            self._git(["push", "--porcelain", "--", "{url}", f"{commit}:{ref}"], url, creds)
            return True
        except SourceError as exc:
            if any(sign in getattr(exc, "output", "") for sign in MOVED):
                return False
            raise

    def _tree_with(self, url: str, head: str, changes: dict[str, bytes | None]) -> str:
        """Tree id of `head`'s tree with `changes` applied (built through a temporary index)."""
        with tempfile.TemporaryDirectory(dir=self.repo_dir(url)) as tmp:
            env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
            self._git(["read-tree", head], url, env=env)
            modes = {}
            for line in self._git(["ls-files", "--stage", "-z"], url, env=env).split("\0"):
                if line:
                    meta, _, path = line.partition("\t")
                    modes[path] = meta.split()[0]
            entries = []  # "mode sha<TAB>path"; mode 0 removes the path
            for path, data in changes.items():
                if data is None:
                    entries.append(f"0 {'0' * len(head)}\t{path}")
                    continue
                blob = self._git(["hash-object", "-w", "--stdin"], url, input=data).strip()
                entries.append(f"{modes.get(path, '100644')} {blob}\t{path}")  # keep an x bit
            # --index-info, unlike --force-remove, needs no work tree (the cache is bare).
            self._git(["update-index", "-z", "--index-info"], url, env=env,
                      input="".join(e + "\0" for e in entries).encode())
            return self._git(["write-tree"], url, env=env).strip()


def _check_repo_path(path: str) -> str:
    p = PurePosixPath(path)
    if not path or p.is_absolute() or any(part in ("..", ".git", "") for part in p.parts):
        raise SourceError(f"invalid path in repository: {path!r}")
    return str(p)
