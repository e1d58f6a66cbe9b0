"""Git access for the engine: one cached bare clone per repository, revisions, exports, commits.

The cache holds, under the folder given to RepoCache:

    <HMAC of the URL>/repo.git             bare repository, fetched into (never re-cloned)
    <HMAC of the URL>/checkouts/<sha>/     read-only export of one commit, made once and reused
    askpass.sh                             prints $GITOPS_GIT_USERNAME / $GITOPS_GIT_PASSWORD

Credentials reach git only through the environment of the git process (read back by the askpass
helper when the server asks), so they are never in a URL, a config file or an argument list, and
every message built from git's output goes through `_redact`.
"""
from __future__ import annotations

import fcntl
import hashlib
import hmac
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit, urlunsplit

from ..errors import SourceError

log = logging.getLogger(__name__)

ASKPASS = """#!/bin/sh
# git runs this when a server asks for credentials; they live only in git's environment.
case "$1" in
  Username*) printf '%s\\n' "$GITOPS_GIT_USERNAME" ;;
  *) printf '%s\\n' "$GITOPS_GIT_PASSWORD" ;;
esac
"""
HEX = re.compile(r"^[0-9a-f]{4,64}$")
ALLOWED_PROTOCOLS = "http:https"  # GIT_ALLOW_PROTOCOL's syntax
AUTHOR = re.compile(r"^\s*(?P<name>[^<>]+?)\s*<(?P<email>[^<>]*)>\s*$")
URL_USERINFO = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


@dataclass(frozen=True)
class GitCredentials:
    """HTTPS credentials: username + password, or a token (sent as the password)."""
    username: str = ""
    password: str = ""
    token: str = ""

    def __repr__(self) -> str:  # a credential must not end up in a log through repr()
        return f"GitCredentials(username={self.username!r}, password=***, token=***)"

    @property
    def secret(self) -> str:
        return self.password or self.token

    @property
    def login(self) -> str:
        # Hosts that take a token as the password accept any user name; "git" is conventional.
        return self.username or ("git" if self.token else "")


KEEP_EXPORTS = 16  # per repository
EXPORT_GRACE_SECONDS = 600


class RepoCache:
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
        self._trees: dict[str, dict[str, str]] = {}
        self.keep_exports = KEEP_EXPORTS
        self._trees_lock = threading.Lock()
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

    def ls_remote(self, url: str, creds: GitCredentials | None = None) -> dict[str, str]:
        """Every ref of the remote (HEAD, refs/heads/*, refs/tags/* and peeled `^{}`) -> sha."""
        out = self._git(["ls-remote", "--", "{url}"], url, creds)
        refs = {}
        for line in out.splitlines():
            sha, _, ref = line.partition("\t")
            if ref:
                refs[ref] = sha
        return refs

    def resolve(self, url: str, revision: str | None, creds: GitCredentials | None = None,
                refs: dict[str, str] | None = None) -> str:
        """The commit sha `revision` names on the remote: branch, tag (peeled), sha, or HEAD.

        `refs` (from one ls_remote) lets many applications of one repository share a call.
        """
        rev = (revision or "").strip() or "HEAD"
        if refs is None:
            refs = self.ls_remote(url, creds)
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

    def checkout(self, url: str, sha: str, creds: GitCredentials | None = None) -> Path:
        """A read-only folder holding commit `sha`'s files; made once, then reused."""
        sha = sha.strip().lower()
        if not HEX.match(sha):  # it names a folder: nothing but a hex string may get there
            raise SourceError(f"not a commit sha: {sha!r}")
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
            _prune_exports(target.parent, self.keep_exports, current=target)
            return target

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

    # --- fetching -----------------------------------------------------------------------------
    def folder_ids(self, url: str, sha: str) -> dict[str, str]:
        """Every folder of commit `sha` ("" is the root) -> its git tree id: two commits whose
        folder has the same id hold exactly the same files there. One git call per commit;
        `sha` must be in the cache (resolve or checkout it first)."""
        with self._trees_lock:
            if sha in self._trees:
                return self._trees[sha]
        ids = {"": self._git(["rev-parse", f"{sha}^{{tree}}"], url).strip()}
        for line in self._git(["ls-tree", "-r", "-d", "-z", sha], url).split("\0"):
            if line:
                meta, _, path = line.partition("\t")
                ids[path] = meta.split()[2]
        with self._trees_lock:
            self._trees[sha] = ids
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
        self._git(["fetch", "--quiet", "--prune", "--no-tags", "--", "{url}",
                   "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"], url, creds)

    def _init(self, url: str) -> None:
        git_dir = self.repo_dir(url) / "repo.git"
        if (git_dir / "HEAD").exists():
            return
        git_dir.parent.mkdir(parents=True, exist_ok=True)
        _run(["git", "init", "--quiet", "--bare", str(git_dir)], "init", self.timeout, url, None)
        (git_dir.parent / "url").write_text(_split_url(url)[0] + "\n")  # for humans; no secret

    def _export(self, url: str, sha: str, dest: Path) -> None:
        # Files of the commit through a throw-away index: no worktree to register or clean up.
        index = dest.parent / f"{dest.name}.index"
        env = {"GIT_INDEX_FILE": str(index), "GIT_WORK_TREE": str(dest)}
        try:
            self._git(["read-tree", sha], url, env=env)
            self._git(["checkout-index", "--all", "--force"], url, env=env)
        finally:
            index.unlink(missing_ok=True)

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
             env: dict | None = None, input: bytes | None = None) -> str:
        """Run git on `url`'s cache; "{url}" in args stands for the URL without credentials."""
        clean, url_creds = _split_url(url)
        creds = creds or url_creds
        argv = ["git", "-c", "credential.helper=", "--git-dir",
                str(self.repo_dir(url) / "repo.git")]
        argv += [clean if a == "{url}" else a for a in args]
        env = dict(env or {})
        if "{url}" in args:  # talks to the remote: hand over the credentials, never prompt
            _check_remote(clean)
            env.update({"GIT_ASKPASS": str(self._askpass), "GIT_TERMINAL_PROMPT": "0",
                        "GITOPS_GIT_USERNAME": creds.login if creds else "",
                        "GITOPS_GIT_PASSWORD": creds.secret if creds else ""})
        return _run(argv, args[0], self.timeout, url, creds, env=env, input=input)


def _run(argv, what, timeout, url, creds, env=None, input=None) -> str:
    """Output of `argv`; SourceError (with the redacted output as `.output`) when it fails."""
    # None of the caller's GIT_* (GIT_DIR, GIT_INDEX_FILE... set when run from a hook, say):
    # each call names its repository and index itself.
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    full_env.update({"LC_ALL": "C", "LANGUAGE": "C"}, **(env or {}))  # messages we can match
    # Whatever the URL or a redirect says, git speaks only HTTP(S): file:// would read the
    # server's own disk, ext:: runs a command, ssh:// reaches hosts with the server's keys.
    full_env["GIT_ALLOW_PROTOCOL"] = ALLOWED_PROTOCOLS
    log.debug("git %s on %s", what, _split_url(url)[0])
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=full_env, start_new_session=True)
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
    return out.decode(errors="replace")


def _explain(output: str, where: str, what: str) -> str:
    """A message for the user from git's (already redacted) failure output."""
    text = output.lower()
    if any(s in text for s in ("authentication failed", "could not read username",
                               "could not read password", "returned error: 401",
                               "returned error: 403")):
        return f"authentication failed for {where}"
    if any(s in text for s in ("could not resolve host", "failed to connect", "connection refused",
                               "connection timed out", "couldn't connect", "network is unreachable",
                               "ssl certificate problem", "empty reply from server")):
        detail = next((ln for ln in output.splitlines() if "unable to access" in ln), "")
        detail = detail.split("': ", 1)[-1] if detail else ""
        return f"cannot reach {where}" + (f": {detail}" if detail else "")
    if "not found" in text and "repository" in text or "does not appear to be a git" in text:
        return f"repository not found: {where}"
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    return f"git {what} failed for {where}: " + ("; ".join(lines[-3:]) or "no output")


def _check_remote(url: str) -> None:
    """SourceError unless `url` is an http(s) URL with a host (the only remotes git may use)."""
    parts = urlsplit(url)
    if parts.scheme not in ALLOWED_PROTOCOLS.split(":") or not parts.hostname:
        # Not echoed: a refused URL may be a local path or a command line.
        raise SourceError("only http:// and https:// repository URLs are supported")


def _split_url(url: str) -> tuple[str, GitCredentials | None]:
    """The URL without user info (what goes to git and to disk) and credentials found in it."""
    parts = urlsplit(url.strip())
    if not parts.scheme or "@" not in parts.netloc or parts.scheme not in ("http", "https"):
        return url.strip().rstrip("/"), None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    clean = urlunsplit(parts._replace(netloc=host)).rstrip("/")
    return clean, GitCredentials(unquote(user), unquote(password))


def _redact(text: str, url: str, creds: GitCredentials | None) -> str:
    """`text` without any credential: user info in URLs, the password/token given or in `url`."""
    text = URL_USERINFO.sub(r"\1***@", text)
    secrets = [creds.password, creds.token] if creds else []
    url_creds = _split_url(url)[1]
    if url_creds:
        secrets.append(url_creds.password)
    for secret in filter(None, secrets):
        text = text.replace(secret, "***")
    return text


def _check_repo_path(path: str) -> str:
    p = PurePosixPath(path)
    if not path or p.is_absolute() or any(part in ("..", ".git", "") for part in p.parts):
        raise SourceError(f"invalid path in repository: {path!r}")
    return str(p)


def _make_read_only(top: Path) -> None:
    # Renderers share one export per commit; read-only so none can change it for the others.
    for dirpath, dirnames, filenames in os.walk(top):
        for name in filenames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                os.chmod(p, os.stat(p).st_mode & 0o555)
    for dirpath, dirnames, _ in os.walk(top, topdown=False):
        for name in dirnames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                os.chmod(p, 0o555)
    os.chmod(top, 0o555)


def _touch(path: Path) -> None:
    try:
        os.utime(path)  # the export's mtime says when it was last used
    except OSError:
        pass


def _prune_exports(folder: Path, keep: int, current: Path) -> None:
    """Keep the `keep` most recently used exports of a repository (every push makes one), plus
    any used in the last few minutes (a render may be reading it); drop leftovers of crashes."""
    now = time.time()
    exports = []
    for entry in folder.iterdir():
        age = now - entry.stat().st_mtime
        if entry.name.startswith("."):
            if age > 3600:
                _remove(entry)
        elif entry != current:
            exports.append((entry.stat().st_mtime, entry))
    exports.sort(reverse=True)
    for mtime, entry in exports[max(keep - 1, 0):]:
        if now - mtime > EXPORT_GRACE_SECONDS:
            _remove(entry)


def _remove(top: Path) -> None:
    for dirpath, dirnames, _ in os.walk(top):
        for name in dirnames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                os.chmod(p, 0o755)
    if top.exists():
        top.chmod(0o755)
    shutil.rmtree(top, ignore_errors=True)
