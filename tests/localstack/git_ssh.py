"""The ForceCommand of the local stack's SSH git server: serves git-upload-pack and
git-receive-pack for the repositories under ROOT, nothing else (no shell).

    python3 git_ssh.py ROOT        (sshd runs it with the client's command in SSH_ORIGINAL_COMMAND)

The path of `ssh://user@host/team/app.git` (or `user@host:team/app.git`) names ROOT/team/app.git.
Standard library only: sshd runs it by path, outside the project's environment.
"""
import os
import shlex
import sys

COMMANDS = ("git-upload-pack", "git-receive-pack")


def main(root: str) -> int:
    try:
        command, path = shlex.split(os.environ.get("SSH_ORIGINAL_COMMAND", ""))
    except ValueError:
        command, path = "", ""
    if command not in COMMANDS:
        print("this server only serves git fetch and push", file=sys.stderr)
        return 1
    root = os.path.realpath(root)
    target = os.path.realpath(os.path.join(root, path.lstrip("/")))
    if not target.startswith(root + os.sep) or not os.path.isdir(target):
        print(f"repository {path!r} not found", file=sys.stderr)
        return 1
    os.environ.update(GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="safe.directory",
                      GIT_CONFIG_VALUE_0="*")
    os.execvp("git", ["git", command[len("git-"):], target])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
