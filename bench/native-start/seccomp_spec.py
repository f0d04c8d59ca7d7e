"""Turns a docker-format seccomp profile (podman's seccomp.json) into the
runtime spec's linux.seccomp for a container with podman's default
capabilities on this machine, as podman does before it calls the runtime:
rules whose includes the container meets and whose excludes it does not.

    python3 seccomp_spec.py PROFILE CONFIG_JSON   (adds linux.seccomp to CONFIG_JSON)
"""
import json
import os
import platform
import sys

CAPS = {
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP",
    "CAP_SETUID", "CAP_SYS_CHROOT",
}
ARCH = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}[platform.machine()]
# Rules name architectures as Go does.
GOARCH = {"x86_64": "amd64", "aarch64": "arm64"}[platform.machine()]


def kernel():
    return tuple(int(x) for x in os.uname().release.split("-")[0].split(".")[:2])


def version(s):
    return tuple(int(x) for x in s.split(".")[:2])


def applies(rule):
    inc, exc = rule.get("includes", {}), rule.get("excludes", {})
    if inc.get("caps") and not set(inc["caps"]) <= CAPS:
        return False
    if inc.get("arches") and GOARCH not in inc["arches"]:
        return False
    if inc.get("minKernel") and kernel() < version(inc["minKernel"]):
        return False
    if exc.get("caps") and set(exc["caps"]) & CAPS:
        return False
    if exc.get("arches") and GOARCH in exc["arches"]:
        return False
    if exc.get("minKernel") and kernel() >= version(exc["minKernel"]):
        return False
    return True


profile = json.load(open(sys.argv[1]))
arches = []
for m in profile.get("archMap", []):
    if m["architecture"] == ARCH:
        arches = [m["architecture"], *m.get("subArchitectures", [])]
seccomp = {"defaultAction": profile["defaultAction"], "architectures": arches, "syscalls": []}
if "defaultErrnoRet" in profile:
    seccomp["defaultErrnoRet"] = profile["defaultErrnoRet"]
for rule in profile["syscalls"]:
    if not applies(rule):
        continue
    names = rule.get("names") or [rule["name"]]
    out = {"names": names, "action": rule["action"]}
    for k in ("errnoRet", "args"):
        if rule.get(k):
            out[k] = rule[k]
    seccomp["syscalls"].append(out)
config = json.load(open(sys.argv[2]))
config["linux"]["seccomp"] = seccomp
json.dump(config, open(sys.argv[2], "w"), indent=1)
