"""A node of the test cluster that really runs the pods bound to it: the kaniko executor only.

KWOK's nodes run no container, so a kaniko Job there never builds anything. This node is a
plain Node object (no KWOK annotation: KWOK leaves it alone) kept Ready by a Lease heartbeat,
tainted so that only pods tolerating PROCESS_TAINT land on it, and served by a minimal kubelet
in a thread of the test process:

- a pod whose single container runs a kaniko executor image (EXECUTOR_IMAGES) gets a fresh root
  folder with the executor at /kaniko/executor; it runs there with the container's args, the
  image's environment and the container's env (values and secretKeyRef), in its own mount and
  PID namespaces where, as a container runtime does, /dev (device files), /run, /proc, the
  termination log file and the secret volumes (items, subPath) are mounts (CONTAINER_SETUP);
- the pod goes Running (startedAt), then Succeeded or Failed with the container's terminated
  state: exit code, reason, and as message the root's /dev/termination-log (or, with
  FallbackToLogsOnError and no message, the output's tail), as a kubelet does;
- any other pod is set Failed with the reason UnsupportedImage; a pod being deleted has its
  process killed and is then removed (grace period 0), as a kubelet confirms a deletion.

The executor's output goes to the stack log process-node.log (no kubelet server: the pod log
API answers an error, which the build log notes). The root folder, the credentials written into
it included, is removed when the pod ends.
"""
from __future__ import annotations

import base64
import datetime
import functools
import os
import shutil
import signal
import subprocess
import threading
from pathlib import Path, PurePosixPath

from gitops_ui.launcher import die_with_parent

from . import Component
from .kube import REPO
from .process import StackError, wait_for

NODE_NAME = "process-node-0"
PROCESS_TAINT = {"key": "gitops-ui.test/process-node", "value": "true", "effect": "NoSchedule"}
NODE_LABELS = {"kubernetes.io/hostname": NODE_NAME, "kubernetes.io/os": "linux",
               "kubernetes.io/arch": "amd64", "gitops-ui.test/process-node": "true"}
# Image repositories this node runs as the kaniko executor (any tag): the maintained fork the
# product defaults to, and upstream's. Both run the one executor tools/kaniko/build.sh builds
# (upstream's last release: the fork's Go module cannot be fetched here); same flags.
EXECUTOR_IMAGES = ("ghcr.io/osscontainertools/kaniko", "gcr.io/kaniko-project/executor")
# The environment of the executor image (its Dockerfile's ENV lines).
IMAGE_ENV = {"HOME": "/root", "USER": "root", "PATH": "/usr/local/bin:/kaniko:/busybox",
             "SSL_CERT_DIR": "/kaniko/ssl/certs", "DOCKER_CONFIG": "/kaniko/.docker/"}
# Run by /bin/sh in the pod's fresh mount and PID namespaces, before it enters the root: what a
# container runtime mounts (a /dev of device files, /run, the termination log file, /proc, the
# volumes), so they are mounts in the container, which kaniko leaves out of its snapshots, as
# in a real pod. Arguments: root, working dir, then mount pairs (host path, path in the root)
# up to "--", then the command.
CONTAINER_SETUP = r"""
set -eu
pod_path=$PATH PATH=/usr/sbin:/usr/bin:/sbin:/bin
enter=$(command -v unshare)
root=$1 wd=$2; shift 2
mount -t tmpfs -o mode=755,nosuid dev "$root/dev"
for device in null:3 zero:5 full:7 random:8 urandom:9; do
  mknod -m 666 "$root/dev/${device%%:*}" c 1 "${device##*:}"
done
mount -t tmpfs -o mode=755,nosuid,nodev run "$root/run"
touch "$root/run/.containerenv"
while [ "$1" != -- ]; do
  source=$1 target=$root$2; shift 2
  if [ -d "$source" ]; then mkdir -p "$target"; else mkdir -p "${target%/*}"; touch "$target"; fi
  mount --bind "$source" "$target"
done
shift
mount -t proc proc "$root/proc"
PATH=$pod_path exec "$enter" --root="$root" --wd="$wd" -- "$@"
"""
LEASE_SECONDS = 40
HEARTBEAT = 10  # seconds between two renewals of the node's Lease and Ready condition
OUTPUT_TAIL = 4096  # bytes of output a FallbackToLogsOnError message keeps, as a kubelet does


def kaniko_executor() -> Path:
    """The executor built by tools/kaniko/build.sh (built on first use, then cached)."""
    result = subprocess.run([str(REPO / "tools/kaniko/build.sh")], capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError(f"building the kaniko executor failed:\n{result.stderr[-3000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def image_repository(image: str) -> str:
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name.rsplit(":", 1)[0] if ":" in last else name


class PodRefused(Exception):
    """A pod this node cannot run; the message becomes the pod's status message."""


class ProcessNode(Component):
    name = "process-node"
    requires = ("kube",)

    def start(self) -> None:
        from kubernetes import client

        self.executor = kaniko_executor()
        # Found here: the executor's environment has the image's PATH, not this machine's.
        self.unshare = shutil.which("unshare")
        if self.unshare is None:
            raise StackError("unshare is missing (Debian package util-linux)")
        self.kube = self.stack.get("kube")
        self.core = client.CoreV1Api(self.kube.api_client())
        self.coordination = client.CoordinationV1Api(self.kube.api_client())
        self.log = self.log_dir / "process-node.log"
        self.stopping = threading.Event()
        self.running: dict[str, subprocess.Popen] = {}  # pod uid -> its executor
        self.handled: set[str] = set()
        self.lock = threading.Lock()
        self._register()
        self.threads = [threading.Thread(target=self._heartbeat, daemon=True, name="node-lease"),
                        threading.Thread(target=self._serve_pods, daemon=True, name="node-pods")]
        for thread in self.threads:
            thread.start()

    # --- the node -----------------------------------------------------------------------------
    def _register(self) -> None:
        self.core.create_node({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": NODE_NAME, "labels": NODE_LABELS},
            "spec": {"taints": [PROCESS_TAINT]},
            "status": {"capacity": {"cpu": "2", "memory": "8Gi", "pods": "10"},
                       "allocatable": {"cpu": "2", "memory": "8Gi", "pods": "10"}}})
        self.coordination.create_namespaced_lease("kube-node-lease", {
            "metadata": {"name": NODE_NAME},
            "spec": {"holderIdentity": NODE_NAME, "leaseDurationSeconds": LEASE_SECONDS,
                     "renewTime": self._micro_now()}})
        self._report_ready()

        def ready():
            node = self.core.read_node(NODE_NAME)
            return any(c.type == "Ready" and c.status == "True"
                       for c in node.status.conditions or []) and not any(
                t.key.startswith("node.kubernetes.io/") for t in node.spec.taints or [])
        wait_for(ready, 60, f"node {NODE_NAME} Ready")

    @staticmethod
    def _micro_now() -> str:
        return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def _report_ready(self) -> None:
        stamp = now()
        self.core.patch_node_status(NODE_NAME, {"status": {"conditions": [{
            "type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "the test stack's process node runs kaniko executor pods",
            "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}],
            # No kubelet server: the API server's pod log request is refused at once.
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]}})

    def _heartbeat(self) -> None:
        while not self.stopping.wait(HEARTBEAT):
            try:
                self.coordination.patch_namespaced_lease(
                    NODE_NAME, "kube-node-lease", {"spec": {"renewTime": self._micro_now()}})
                self._report_ready()
            except Exception as exc:  # noqa: BLE001 - the API server stopping first
                self._say(f"heartbeat failed: {exc}")

    # --- the pods -----------------------------------------------------------------------------
    def _serve_pods(self) -> None:
        from kubernetes import watch

        version = None
        while not self.stopping.is_set():
            stream = watch.Watch()
            try:
                pods = self.core.list_pod_for_all_namespaces(
                    field_selector=f"spec.nodeName={NODE_NAME}")
                for pod in pods.items:
                    self._seen(pod)
                version = pods.metadata.resource_version
                for event in stream.stream(self.core.list_pod_for_all_namespaces,
                                           field_selector=f"spec.nodeName={NODE_NAME}",
                                           resource_version=version, timeout_seconds=30):
                    if self.stopping.is_set():
                        break
                    if event["type"] != "DELETED":
                        self._seen(event["object"])
            except Exception as exc:  # noqa: BLE001 - a watch that expired: list again
                if not self.stopping.is_set():
                    self._say(f"pod watch restarted: {exc}")
                    self.stopping.wait(1)
            finally:
                stream.stop()

    def _seen(self, pod) -> None:
        uid = pod.metadata.uid
        if pod.metadata.deletion_timestamp is not None:
            self._kill(uid)
            if uid not in self.running:
                self._confirm_deletion(pod)
            return
        with self.lock:
            if uid in self.handled or pod.status.phase not in (None, "Pending"):
                return
            self.handled.add(uid)
        threading.Thread(target=self._run_pod, args=(pod,), daemon=True,
                         name=f"pod-{pod.metadata.name}").start()

    def _run_pod(self, pod) -> None:
        name, ns, uid = pod.metadata.name, pod.metadata.namespace, pod.metadata.uid
        pod_dir = self.workdir / uid
        try:
            container = self._container(pod)
            mounts = self._materialise(pod, container, pod_dir)
        except Exception as exc:  # noqa: BLE001 - e.g. a Secret it names is missing
            reason = "UnsupportedImage" if isinstance(exc, PodRefused) else \
                "CreateContainerConfigError"
            self._say(f"pod {ns}/{name} not run: {reason}: {exc}")
            self._set_status(pod, "Failed", reason=reason, message=str(exc))
            shutil.rmtree(pod_dir, ignore_errors=True)
            return
        started = now()
        self._set_status(pod, "Running", container=container.name, image=container.image,
                         state={"running": {"startedAt": started}})
        argv = [self.unshare, "--mount", "--pid", "--fork", "--kill-child", "--",
                "/bin/sh", "-c", CONTAINER_SETUP, "setup", str(pod_dir / "root"),
                container.working_dir or "/", *mounts, "--",
                *(container.command or ["/kaniko/executor"]), *(container.args or [])]
        output = pod_dir / "output.log"
        self._say(f"pod {ns}/{name}: running {container.image} as {self.executor}")
        with open(output, "wb") as out:
            try:
                # Killed if the test process dies: this thread waits for it until it ends.
                proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=self._env(pod, container),
                                        start_new_session=True, preexec_fn=functools.partial(
                                            die_with_parent, signal.SIGKILL))
            except Exception as exc:  # noqa: BLE001 - the pod must not stay Running
                out.write(f"cannot start the executor: {exc}\n".encode())
                code = 128
            else:
                self.running[uid] = proc
                code = proc.wait()
                code = 128 - code if code < 0 else code  # killed by a signal: 128 + its number
        self.running.pop(uid, None)
        text = output.read_bytes()
        with open(self.log, "ab") as log:
            log.write(f"--- pod {ns}/{name} output ---\n".encode() + text + b"\n")
        message = ""
        termination = pod_dir / "termination-log"
        if termination.exists():
            message = termination.read_text(errors="replace")[:4096]
        if code != 0 and not message and \
                container.termination_message_policy == "FallbackToLogsOnError":
            message = text[-OUTPUT_TAIL:].decode(errors="replace")
        shutil.rmtree(pod_dir, ignore_errors=True)  # the credentials written for it too
        phase = "Succeeded" if code == 0 else "Failed"
        state = {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                                "message": message, "startedAt": started, "finishedAt": now()}}
        self._say(f"pod {ns}/{name}: exited with {code}")
        try:
            self._set_status(pod, phase, container=container.name, image=container.image,
                             state=state)
        except Exception as exc:  # noqa: BLE001 - deleted meanwhile (a cancel)
            self._say(f"pod {ns}/{name}: final status not set: {exc}")
        current = self._read(pod)
        if current is not None and current.metadata.deletion_timestamp is not None:
            self._confirm_deletion(current)

    def _container(self, pod):
        spec = pod.spec
        if spec.init_containers or len(spec.containers) != 1:
            raise PodRefused("this node runs pods of exactly one container, no init containers")
        container = spec.containers[0]
        if image_repository(container.image) not in EXECUTOR_IMAGES:
            raise PodRefused(f"this node runs only the kaniko executor images "
                             f"({', '.join(EXECUTOR_IMAGES)}), not {container.image}")
        if container.command and container.command != ["/kaniko/executor"]:
            raise PodRefused("the executor image runs /kaniko/executor only")
        return container

    def _materialise(self, pod, container, pod_dir: Path) -> list[str]:
        """The root folder with the executor, the termination log file and the secret volumes
        written under `pod_dir`; the (host path, path inside) pairs CONTAINER_SETUP mounts."""
        root = pod_dir / "root"
        for folder in ("kaniko", "dev", "proc", "run", "root", "tmp", "etc"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        shutil.copy2(self.executor, root / "kaniko/executor")
        (pod_dir / "termination-log").write_bytes(b"")
        mounts = [str(pod_dir / "termination-log"),
                  container.termination_message_path or "/dev/termination-log"]
        volumes = {v.name: v for v in pod.spec.volumes or []}
        for i, mount in enumerate(container.volume_mounts or []):
            volume = volumes.get(mount.name)
            if volume is None or volume.secret is None:
                raise PodRefused(f"volume {mount.name}: this node mounts secret volumes only")
            self._inside(mount.mount_path)
            files = self._secret_files(pod.metadata.namespace, volume.secret)
            source = pod_dir / "volumes" / f"{i}-{mount.name}"
            if mount.sub_path:
                if mount.sub_path not in files:
                    raise PodRefused(f"volume {mount.name} has no {mount.sub_path}")
                files = {"": files[mount.sub_path]}
                source.parent.mkdir(parents=True, exist_ok=True)
            for path, data in files.items():
                if path:
                    self._inside("/" + path)
                dest = source / path if path else source
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(data)
                dest.chmod(0o400)
            mounts += [str(source), mount.mount_path]
        return mounts

    def _secret_files(self, ns: str, source) -> dict[str, bytes]:
        secret = self.core.read_namespaced_secret(source.secret_name, ns)
        data = {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}
        if not source.items:
            return data
        return {item.path: data[item.key] for item in source.items if item.key in data}

    @staticmethod
    def _inside(path: str) -> None:
        parts = PurePosixPath(path).parts
        if not path.startswith("/") or ".." in parts:
            raise PodRefused(f"path {path} leaves the container's root")

    def _env(self, pod, container) -> dict[str, str]:
        env = dict(IMAGE_ENV)
        for var in container.env or []:
            if var.value_from is None:
                env[var.name] = var.value or ""
            elif var.value_from.secret_key_ref is not None:
                ref = var.value_from.secret_key_ref
                secret = self.core.read_namespaced_secret(ref.name, pod.metadata.namespace)
                env[var.name] = base64.b64decode((secret.data or {})[ref.key]).decode()
            else:
                raise PodRefused(f"env {var.name}: only values and secretKeyRef are supported")
        return env

    def _set_status(self, pod, phase: str, *, container: str | None = None,
                    image: str | None = None, state: dict | None = None, reason: str = "",
                    message: str = "") -> None:
        running = phase == "Running"
        stamp = now()
        status = {"phase": phase, "hostIP": "127.0.0.1", "podIP": "127.0.0.1",
                  "conditions": [{"type": t, "status": "True" if running or t == "PodScheduled"
                                  else "False", "lastTransitionTime": stamp}
                                 for t in ("PodScheduled", "Initialized", "ContainersReady",
                                           "Ready")]}
        if running or not container:  # the pod's start: now, or never for a refused one
            status["startTime"] = stamp
        if reason:
            status.update(reason=reason, message=message)
        if container:
            status["containerStatuses"] = [{
                "name": container, "image": image, "imageID": image, "ready": running,
                "started": running, "restartCount": 0, "state": state}]
        self.core.patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace,
                                              {"status": status})

    def _read(self, pod):
        from kubernetes.client.rest import ApiException

        try:
            return self.core.read_namespaced_pod(pod.metadata.name, pod.metadata.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _kill(self, uid: str) -> None:
        proc = self.running.get(uid)
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)

    def _confirm_deletion(self, pod) -> None:
        from kubernetes.client.rest import ApiException

        try:
            self.core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace,
                                            grace_period_seconds=0)
        except ApiException as exc:
            if exc.status != 404:
                self._say(f"pod {pod.metadata.name} not deleted: {exc}")

    def _say(self, line: str) -> None:
        with open(self.log, "a") as log:
            log.write(f"{now()} {line}\n")

    # --- the component ------------------------------------------------------------------------
    def stop(self) -> None:
        if not hasattr(self, "stopping"):
            return
        self.stopping.set()
        for uid in list(self.running):
            self._kill(uid)
        try:  # the control plane may be stopping too; its etcd goes with it
            self.core.delete_node(NODE_NAME)
        except Exception:  # noqa: BLE001
            pass

    def info(self) -> dict:
        return {"node": NODE_NAME, "taint": PROCESS_TAINT, "executor": str(self.executor)}

    def logs(self) -> list[Path]:
        return [self.log] if hasattr(self, "log") else []
