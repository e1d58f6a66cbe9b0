"""Git access for the engine: one cached bare clone per repository, revisions, exports, commits.

The cache holds, under the folder given to RepoCache:

    <HMAC of the URL>/repo.git             bare repository, fetched into (never re-cloned)
    <HMAC of the URL>/checkouts/<sha>/     read-only export of one commit, made once and reused
    <HMAC of the URL>/checkouts/p-<hash>/  read-only export of the folders one render reads
                                           (export.py), named after their content
    askpass.sh                             prints $GITOPS_GIT_USERNAME / $GITOPS_GIT_PASSWORD

How credentials reach git (HTTPS or SSH), which remotes are allowed and the messages made from
git's failures: git_auth.py. Which folders a partial export holds: export.py. Commits and
pushes: git_commit.py.
"""
from __future__ import annotations

import fcntl
import hashlib
import hmac
import logging
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

from ..errors import SourceError
from . import export
from .export import make_read_only as _make_read_only
from .export import remove as _remove
from .export import touch as _touch
from .git_auth import ASKPASS, HTTP_PROTOCOLS, GitCredentials, remote_access
from .git_auth import explain as _explain
from .git_auth import redact as _redact
from .git_auth import split_url as _split_url
from .git_commit import Committing
from .shared_calls import SharedCalls

log = logging.getLogger(__name__)

HEX = re.compile(r"^[0-9a-f]{4,64}$")
KEEP_EXPORTS = 16  # per repository
EXPORT_GRACE_SECONDS = 600
PRUNE_EVERY = 60  # seconds between two looks for old exports of one repository
FETCH_REFSPECS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
REMOTE_HEAD = "refs/gitops-ui/remote-head"  # the remote's HEAD as fetch_refs last saw it


class RepoCache(Committing):
    """Clone cache shared by every application that uses the same repository URL.

    Safe to call from many threads (a lock per repository) and many processes (flock).
    `timeout` bounds every single git call, in seconds.
    """

    def __init__(self, cache_dir: Path | str, timeout: float = 120, path_secret: bytes | None = None):
        """`path_secret` keys the folder names: a Kustomize or Helm source cannot reach another
        repository's files by guessing `../../<folder>`. Processes sharing a cache pass the same
        secret; without one, each instance gets a random one (and its own folders)."""
        self.root = Path(cache_dir)
        self._path_secret = path_secret or os.urandom(32)
        self.root.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        self._locks: dict[str, threading.Lock] = {}
        # (repository, sha) -> folder ids: two repositories can hold the same commit, and one
        # whose cache lacks it must fetch it first.
        self._trees: dict[tuple[str, str], dict[str, str]] = {}
        self.keep_exports = KEEP_EXPORTS
        self._trees_lock = threading.Lock()
        self._scans = export.ScanMemo()
        self._ls_remotes = SharedCalls()
        self._pruned: dict[Path, float] = {}  # checkouts folder -> when it was last pruned
        self._locks_guard = threading.Lock()
        self._askpass = self.root / "askpass.sh"
        if not self._askpass.exists():
            tmp = self.root / f".askpass.{os.getpid()}.{threading.get_ident()}"
            tmp.write_text(ASKPASS)
            tmp.chmod(0o700)
            tmp.replace(self._askpass)

    # --- public API ---------------------------------------------------------------------------
    def repo_dir(self, url: str) -> Path:
        """The folder of `url`'s cache (bare repository and checkouts)."""
        clean, _ = _split_url(url)
        return self.root / hmac.new(self._path_secret, clean.encode(), hashlib.sha256).hexdigest()

    def ls_remote(self, url: str, creds: GitCredentials | None = None,
                  since: float | None = None) -> dict[str, str]:
        """Every ref of the remote (HEAD, refs/heads/*, refs/tags/* and peeled `^{}`) -> sha.

        Threads asking at once share a call that started after they asked, or after `since`
        (time.time()) when given (SharedCalls)."""
        key = hashlib.sha256(repr((url, creds and (creds.username, creds.secret, creds.ssh_private_key,
                                                   creds.ssh_known_hosts))).encode()).digest()
        return dict(self._ls_remotes.call(key, lambda: self._ls_remote(url, creds), since))

    def _ls_remote(self, url: str, creds: GitCredentials | None) -> dict[str, str]:
        out = self._git(["ls-remote", "--", "{url}"], url, creds)
        refs = {}
        for line in out.splitlines():
            sha, _, ref = line.partition("\t")
            if ref:
                refs[ref] = sha
        return refs

    def fetch_refs(self, url: str, creds: GitCredentials | None = None) -> dict[str, str]:
        """What ls_remote answers (HEAD, branches, tags and peeled tags), from a fetch that also
        brings their commits into the cache: one call to the server where ls-remote and then
        the fetch of the new commit made two. For a push's refresh, whose new commit is read
        next; polling, which mostly finds nothing new, keeps the lighter ls_remote."""
        with self._locked(url):
            self._init(url)
            try:
                self._git(["fetch", "--quiet", "--prune", "--no-tags", "--", "{url}",
                           f"+HEAD:{REMOTE_HEAD}", *FETCH_REFSPECS], url, creds)
            except SourceError as exc:
                if "couldn't find remote ref" not in getattr(exc, "output", ""):
                    raise
                # No default branch (an empty repository, or HEAD naming a deleted branch).
                return self.ls_remote(url, creds)
            out = self._git(["for-each-ref", "--format=%(objectname) %(refname) %(*objectname)",
                             "refs/heads/", "refs/tags/", REMOTE_HEAD], url)
        refs = {}
        for line in out.splitlines():
            sha, ref, peeled = (line.split(" ") + [""])[:3]
            refs["HEAD" if ref == REMOTE_HEAD else ref] = sha
            if peeled:  # an annotated tag: ls-remote's `<tag>^{}` line
                refs[f"{ref}^{{}}"] = peeled
        return refs

    def changed_files(self, url: str, old: str, new: str,
                      creds: GitCredentials | None = None) -> list[str] | None:
        """Repository paths that differ between commits `old` and `new` (fetched if the cache
        lacks `new`), or None when that cannot be told (`old` unknown here, not a sha)."""
        if not (HEX.match(old or "") and HEX.match(new or "")):
            return None
        new = self._commit_sha(url, new, creds)
        if not self._local_commit(url, old):
            return None
        out = self._git(["diff-tree", "-r", "--no-commit-id", "--name-only", "-z", old, new], url)
        return [p for p in out.split("\0") if p]

    def resolve(self, url: str, revision: str | None, creds: GitCredentials | None = None,
                refs: dict[str, str] | None = None, since: float | None = None) -> str:
        """The commit sha `revision` names on the remote: branch, tag (peeled), sha, or HEAD.

        `refs` (from one ls_remote) lets many applications of one repository share a call;
        `since`: the remote as of that moment or later will do (ls_remote).
        """
        rev = (revision or "").strip() or "HEAD"
        if refs is None:
            refs = self.ls_remote(url, creds, since)
        if rev == "HEAD":
            if "HEAD" not in refs:
                raise SourceError(f"{_split_url(url)[0]} has no default branch (empty repository?)")
            return refs["HEAD"]
        # git's own order for a name: exact ref, then tag, then branch. A tag's `^{}` entry is
        # the commit an annotated tag points to.
        for ref in (rev, f"refs/tags/{rev}", f"refs/heads/{rev}"):
            if ref in refs:
                return refs.get(f"{ref}^{{}}", refs[ref])
        if HEX.match(rev.lower()):
            return self._commit_sha(url, rev.lower(), creds)
        raise SourceError(f"revision {rev!r} not found in {_split_url(url)[0]}")

    def checkout(self, url: str, sha: str, creds: GitCredentials | None = None,
                 paths: Iterable[str] | None = None) -> Path:
        """A read-only folder laid out as commit `sha`'s tree; made once, then reused.

        With `paths` (repository-relative folders a render reads), it holds those folders and
        the ones their files refer to, not the rest of the commit (export.py); without, or when
        what they refer to cannot be told for sure, the whole commit.
        """
        sha = sha.strip().lower()
        if not HEX.match(sha):  # it names a folder: nothing but a hex string may get there
            raise SourceError(f"not a commit sha: {sha!r}")
        if paths is not None:
            partial = self._partial_checkout(url, sha, creds, list(paths))
            if partial is not None:
                return partial
        target = self.repo_dir(url) / "checkouts" / sha
        if target.is_dir():  # made complete elsewhere, then renamed into place: no lock needed
            _touch(target)
            return target
        with self._locked(url):
            if target.is_dir():
                return target
            sha = self._commit_sha(url, sha, creds, locked=True)
            target = target.parent / sha
            if target.is_dir():
                return target
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{sha}.", dir=target.parent))
            try:
                self._export(url, sha, tmp)
                _make_read_only(tmp)
                tmp.rename(target)
            except BaseException:
                _remove(tmp)
                raise
            self._prune(target)
            return target

    def _partial_checkout(self, url: str, sha: str, creds, paths: list[str]) -> Path | None:
        with self._trees_lock:
            known = (self.repo_dir(url).name, sha) in self._trees
        if not known:
            sha = self._commit_sha(url, sha, creds)  # fetched first if the cache lacks it
        ids = self.folder_ids(url, sha)
        repo_key = self.repo_dir(url).name

        def scan(folder: str, tree: str):
            found = self._scans.get((repo_key, folder, tree))
            if found is False:
                found = export.scan_files(folder, self._tree_files(url, tree),
                                          lambda oids: self._blobs(url, oids))
                self._scans.put((repo_key, folder, tree), found)
            return found

        folders = export.closure(paths, ids, scan)
        if folders is None:
            return None
        target = self.repo_dir(url) / "checkouts" / export.export_name(folders, ids)
        if target.is_dir():  # the same folders, unchanged since an earlier commit
            _touch(target)
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            self._export(url, sha, tmp, folders)
            _make_read_only(tmp)
            try:
                tmp.rename(target)
            except OSError:
                if not target.is_dir():
                    raise
                _remove(tmp)  # made meanwhile by another thread or process: theirs is the same
        except BaseException:
            _remove(tmp)
            raise
        with self._locked(url):
            self._prune(target)
        return target

    def _prune(self, current: Path) -> None:
        """Old exports of the repository go, at most every PRUNE_EVERY seconds: an export is
        kept for EXPORT_GRACE_SECONDS anyway, and listing the folder after every one of a first
        sync's hundreds of exports cost more than the exports' git calls."""
        now = time.monotonic()
        if now - self._pruned.get(current.parent, -PRUNE_EVERY) < min(PRUNE_EVERY, EXPORT_GRACE_SECONDS):
            return
        self._pruned[current.parent] = now
        export.prune(current.parent, self.keep_exports, current, EXPORT_GRACE_SECONDS)

    def _tree_files(self, url: str, tree: str) -> list[tuple[str, str, str]]:
        """(mode, object id, path) of every file under the tree object `tree`."""
        files = []
        for line in self._git(["ls-tree", "-r", "-z", tree], url).split("\0"):
            if line:
                meta, _, path = line.partition("\t")
                mode, kind, oid = meta.split()
                if kind == "blob":
                    files.append((mode, oid, path))
        return files

    def _blobs(self, url: str, oids: list[str]) -> dict[str, bytes]:
        """The content of each blob in `oids`, in one git call."""
        wanted = "".join(oid + "\n" for oid in oids).encode()
        out = self._git(["cat-file", "--batch"], url, input=wanted, raw=True)
        blobs, pos = {}, 0
        for oid in oids:
            header_end = out.index(b"\n", pos)
            header = out[pos:header_end].split()
            if len(header) != 3:  # "<oid> missing"
                raise SourceError(f"object {oid} missing from the cache of {_split_url(url)[0]}")
            size = int(header[2])
            blobs[oid] = out[header_end + 1:header_end + 1 + size]
            pos = header_end + 1 + size + 1
        return blobs

    # --- fetching -----------------------------------------------------------------------------
    def folder_ids(self, url: str, sha: str) -> dict[str, str]:
        """Every folder of commit `sha` ("" is the root) -> its git tree id: two commits whose
        folder has the same id hold exactly the same files there. One git call per commit;
        `sha` must be in the cache (resolve or checkout it first)."""
        key = (self.repo_dir(url).name, sha)
        with self._trees_lock:
            if key in self._trees:
                return self._trees[key]
        ids = {"": self._git(["rev-parse", f"{sha}^{{tree}}"], url).strip()}
        for line in self._git(["ls-tree", "-r", "-d", "-z", sha], url).split("\0"):
            if line:
                meta, _, path = line.partition("\t")
                ids[path] = meta.split()[2]
        with self._trees_lock:
            self._trees[key] = ids
            while len(self._trees) > 64:
                self._trees.pop(next(iter(self._trees)))
        return ids

    def _commit_sha(self, url: str, rev: str, creds, locked: bool = False) -> str:
        """Full sha of commit `rev` (full or abbreviated), fetching the cache if it lacks it."""
        if not locked:
            with self._locked(url):
                return self._commit_sha(url, rev, creds, locked=True)
        self._init(url)
        found = self._local_commit(url, rev)
        if not found:
            self._fetch(url, creds)
            found = self._local_commit(url, rev)
        if not found and len(rev) in (40, 64):
            # A commit no branch or tag reaches (a pull request's, say) can still be asked for.
            try:
                self._git(["fetch", "--quiet", "--no-tags", "--", "{url}", rev], url, creds)
                found = self._local_commit(url, rev)
            except SourceError as exc:
                if "authentication" in str(exc) or "cannot reach" in str(exc):
                    raise
        if not found:
            raise SourceError(f"revision {rev!r} not found in {_split_url(url)[0]}")
        return found

    def _local_commit(self, url: str, rev: str) -> str | None:
        try:
            out = self._git(["rev-parse", "--verify", "--quiet", "--end-of-options",
                             f"{rev}^{{commit}}"], url)
        except SourceError:
            return None
        sha = out.strip()
        if HEX.match(rev) and not sha.startswith(rev):
            return None  # a local ref that happens to be named like a hex string is not it
        return sha

    def _fetch(self, url: str, creds) -> None:
        self._git(["fetch", "--quiet", "--prune", "--no-tags", "--", "{url}", *FETCH_REFSPECS],
                  url, creds)

    def _init(self, url: str) -> None:
        git_dir = self.repo_dir(url) / "repo.git"
        if (git_dir / "HEAD").exists():
            return
        git_dir.parent.mkdir(parents=True, exist_ok=True)
        _run(["git", "init", "--quiet", "--bare", str(git_dir)], "init", self.timeout, url, None)
        (git_dir.parent / "url").write_text(_split_url(url)[0] + "\n")  # for humans; no secret

    def _export(self, url: str, sha: str, dest: Path, folders: list[str] | None = None) -> None:
        # Files of the commit through a throw-away index: no worktree to register or clean up.
        index = dest.parent / f"{dest.name}.index"
        env = {"GIT_INDEX_FILE": str(index), "GIT_WORK_TREE": str(dest)}
        try:
            if folders is None:
                self._git(["read-tree", sha], url, env=env)
                self._git(["checkout-index", "--all", "--force"], url, env=env)
            else:
                # Only these folders, in one call (three git processes before: ls-tree,
                # update-index, checkout-index, a third of a first sync's git CPU). A path
                # checkout runs the post-checkout hook: none, whatever the cache holds.
                self._git(["checkout", sha, "--", *(f"{folder}/" for folder in folders)], url,
                          env={**env, "GIT_LITERAL_PATHSPECS": "1", "GIT_CONFIG_COUNT": "1",
                               "GIT_CONFIG_KEY_0": "core.hooksPath",
                               "GIT_CONFIG_VALUE_0": os.devnull})
        finally:
            index.unlink(missing_ok=True)

    # --- running git --------------------------------------------------------------------------
    @contextmanager
    def _locked(self, url: str):
        key = self.repo_dir(url).name
        with self._locks_guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            # flock too, for other processes (workers) sharing the cache folder.
            self.repo_dir(url).mkdir(parents=True, exist_ok=True)
            with open(self.repo_dir(url) / "lock", "w") as f:
                fcntl.flock(f, fcntl.LOCK_EX)
                yield

    def _git(self, args: list[str], url: str, creds: GitCredentials | None = None,
             env: dict | None = None, input: bytes | None = None, raw: bool = False):
        """Run git on `url`'s cache; "{url}" in args stands for the URL without credentials."""
        clean, url_creds = _split_url(url)
        creds = creds or url_creds
        argv = ["git", "-c", "credential.helper=", "--git-dir",
                str(self.repo_dir(url) / "repo.git")]
        argv += [clean if a == "{url}" else a for a in args]
        env = dict(env or {})
        if "{url}" not in args:
            return _run(argv, args[0], self.timeout, url, creds, env=env, input=input, raw=raw)
        # Talks to the remote: hand over the credentials, never prompt.
        with remote_access(clean, creds, str(self._askpass), self.timeout) as (
                remote_env, fds, protocols):
            return _run(argv, args[0], self.timeout, url, creds, env={**env, **remote_env},
                        input=input, raw=raw, pass_fds=fds, protocols=protocols)


def _run(argv, what, timeout, url, creds, env=None, input=None, raw=False, pass_fds=(),
         protocols=HTTP_PROTOCOLS):
    """Output of `argv` (bytes if `raw`); SourceError (with the redacted output as `.output`)
    when it fails."""
    # None of the caller's GIT_* (GIT_DIR, GIT_INDEX_FILE... set when run from a hook, say):
    # each call names its repository and index itself.
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    full_env.update({"LC_ALL": "C", "LANGUAGE": "C"}, **(env or {}))  # messages we can match
    # Whatever the URL or a redirect says, git speaks only HTTP(S), or SSH for an SSH remote
    # (with the repository's own key): file:// would read the server's own disk, ext:: runs a
    # command.
    full_env["GIT_ALLOW_PROTOCOL"] = protocols
    log.debug("git %s on %s", what, _split_url(url)[0])
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=full_env, start_new_session=True,
                            pass_fds=pass_fds)
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        # The whole group: git's helpers (git-remote-https) would otherwise keep the pipes open.
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise SourceError(f"git {what} timed out after {timeout:g} s on "
                          f"{_split_url(url)[0]}") from None
    if proc.returncode != 0:
        output = _redact(err.decode(errors="replace") + out.decode(errors="replace"), url, creds)
        exc = SourceError(_explain(output, _split_url(url)[0], what))
        exc.output = output
        raise exc
    return out if raw else out.decode(errors="replace")
