"""Writing to a repository from the clone cache: commits made on top of the remote branch
through a temporary index (the cache is bare), pushed, re-applied once if the branch moved.
Mixed into RepoCache (git.py), whose git runner and locks it uses."""
from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import PurePosixPath

from ..errors import SourceError
from .git_auth import GitCredentials
from .git_auth import split_url as _split_url

log = logging.getLogger(__name__)

AUTHOR = re.compile(r"^\s*(?P<name>[^<>]+?)\s*<(?P<email>[^<>]*)>\s*$")


class Committing:
    """commit_files and revert_to for RepoCache (which provides _git, _locked, _init, _fetch,
    _local_commit, _commit_sha and repo_dir)."""

    def commit_files(self, url: str, branch: str, changes: dict[str, bytes | None], message: str,
                     author: str, creds: GitCredentials | None = None) -> str:
        """Commit `changes` (path -> new content, or None to delete) on `branch` and push.

        Made on top of the remote branch head; if someone pushed meanwhile, re-applied once on
        the new head. Returns the new head sha (the old one if nothing changed).
        """
        paths = {_check_repo_path(p): data for p, data in changes.items()}

        def tree_on(head: str) -> str:
            return self._tree_with(url, head, paths)
        return self._commit_and_push(url, branch, tree_on, message, author, creds)

    def revert_to(self, url: str, branch: str, target_sha: str, message: str, author: str,
                  creds: GitCredentials | None = None) -> str:
        """Commit, on top of `branch`, a tree equal to `target_sha`'s (undoing everything since)."""
        target = self._commit_sha(url, target_sha, creds)
        tree = self._git(["rev-parse", f"{target}^{{tree}}"], url).strip()
        return self._commit_and_push(url, branch, lambda head: tree, message, author, creds)

    # --- committing ---------------------------------------------------------------------------
    def _commit_and_push(self, url, branch, tree_on, message, author, creds) -> str:
        match = AUTHOR.match(author or "")
        if not match:
            raise SourceError(f"author {author!r} is not of the form 'Name <email>'")
        who = {"GIT_AUTHOR_NAME": match["name"], "GIT_AUTHOR_EMAIL": match["email"],
               "GIT_COMMITTER_NAME": match["name"], "GIT_COMMITTER_EMAIL": match["email"]}
        ref = f"refs/heads/{branch}"
        with self._locked(url):
            self._init(url)
            for attempt in (1, 2):
                self._fetch(url, creds)
                head = self._local_commit(url, ref)
                if head is None:
                    raise SourceError(f"branch {branch!r} not found in {_split_url(url)[0]}")
                tree = tree_on(head)
                if tree == self._git(["rev-parse", f"{head}^{{tree}}"], url).strip():
                    return head  # nothing to change: no empty commit
                commit = self._git(["commit-tree", tree, "-p", head, "-F", "-"], url,
                                   env=who, input=message.encode()).strip()
                if self._push(url, commit, ref, creds, retry=attempt == 1):
                    self._git(["update-ref", ref, commit], url)
                    return commit
                log.info("push to %s %s rejected (moved meanwhile); re-applying on new head",
                         _split_url(url)[0], branch)
        raise AssertionError("unreachable")

    def _push(self, url, commit, ref, creds, retry: bool) -> bool:
        """Push; False when rejected as not a fast-forward and a retry is still allowed."""
        try:
            self._git(["push", "--porcelain", "--", "{url}", f"{commit}:{ref}"], url, creds)
            return True
        except SourceError as exc:
            output = getattr(exc, "output", "")
            rejected = "[rejected]" in output or "non-fast-forward" in output
            if retry and rejected:
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
