"""Small manifests written the way people write them: no defaults spelled out."""


def deployment(name, image="nginx:1.27", replicas=1, **annotations):
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, **({"annotations": annotations} if annotations else {})},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "main", "image": image,
                                                           "ports": [{"containerPort": 80}]}]}}}}


def service(name, port=80):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": port, "targetPort": 80}]}}


def configmap(name, annotations=None, **data):
    meta = {"name": name}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data or {"k": "v"}}


def job(name, annotations=None, node_selector=None, deadline=None):
    spec = {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]}
    if node_selector:
        spec["nodeSelector"] = node_selector
    job_spec = {"backoffLimit": 0, "template": {"spec": spec}}
    if deadline:
        job_spec["activeDeadlineSeconds"] = deadline
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, **({"annotations": annotations} if annotations else {})},
            "spec": job_spec}


def statefulset(name):
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
            "spec": {"serviceName": name, "replicas": 2, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "main", "image": "redis:7"}]}}}}


def cronjob(name):
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
            "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "OnFailure", "containers": [{"name": "main", "image": "busybox"}]}}}}}}
