"""The git command line as tests use it: no prompts, no user or system config, a fixed author."""
import os
import subprocess

ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "/bin/false", "GIT_CONFIG_NOSYSTEM": "1",
       "GIT_CONFIG_GLOBAL": os.devnull, "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.test",
       "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.test"}


def git(*args, cwd=None, check=True) -> subprocess.CompletedProcess:
    result = subprocess.run(["git", *map(str, args)], cwd=cwd, env={**os.environ, **ENV},
                            capture_output=True, text=True, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(map(str, args))} failed:\n{result.stdout}{result.stderr}")
    return result
