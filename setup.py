"""kproxy: a Kubernetes Service data plane for Linux nodes.

The kernel backends live in top-level folders (iptables/, nftables/, ipvs/: ModeSpec.package in
kproxy/modes.py) and are installed as kproxy.<folder> so that no bare global module name is
claimed. setup.py cannot import kproxy while building it, so it runs kproxy/modes.py (standard
library only) as a script and reads the registry from its globals.
The Cython fast path is optional at run time: kproxy.fastpath falls back to its pure-Python
twin when the extension is absent.
"""
import os
import runpy

from setuptools import Extension, find_packages, setup

try:
    from Cython.Build import cythonize
except ImportError:  # building without Cython: the pure-Python twin is used
    cythonize = None

ext_modules = []
if cythonize is not None and os.environ.get("KPROXY_NO_CYTHON") != "1":
    ext_modules = cythonize(
        [Extension("kproxy._fastpath", ["kproxy/_fastpath.pyx"], extra_compile_args=["-O3"])],
        compiler_directives={"language_level": "3", "boundscheck": False, "wraparound": False},
    )

HERE = os.path.dirname(os.path.abspath(__file__))
BACKENDS = runpy.run_path(os.path.join(HERE, "kproxy", "modes.py"))["top_level_packages"]()
packages = find_packages(include=["kproxy", "kproxy.*"])
package_dir = {}
for backend in BACKENDS:
    for pkg in find_packages(where=".", include=[backend, backend + ".*"]):
        dotted = "kproxy." + pkg
        packages.append(dotted)
        package_dir[dotted] = pkg.replace(".", "/")

setup(
    name="kproxy",
    version="0.1.0",
    description="Kubernetes Service data plane: iptables, nftables, IPVS and userspace modes",
    python_requires=">=3.11",
    packages=packages,
    package_dir=package_dir,
    package_data={"kproxy": ["*.pyx", "*.pxi"], "kproxy.apiserver": ["openapi/*.json"]},
    ext_modules=ext_modules,
    install_requires=[
        "aiohttp>=3.12",  # 3.12: TCPConnector(socket_factory=) (kproxy.apiserver.podproxy)
        "PyYAML>=6",
        "pyroute2>=0.9",
        "netaddr>=1.0",
        "prometheus-client>=0.20",
        "cryptography>=42",
        "jsonpatch>=1.33",
        "scapy>=2.5",
        "protobuf>=5.26",
        "croniter>=2.0",  # CronJob schedules (the apiserver's validation, the cronjob controller)
        "grpcio>=1.60",  # the kubelet's CRI client (kproxy.containerd.cri)
        "grpcio-tools>=1.60",  # generates the CRI stubs at install (kproxy.containerd.protogen)
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-timeout>=2.3",
            "hypothesis>=6.100",
            "kubernetes>=30",
            "cython>=3.0",
            "jsonschema>=4",
        ],
        "fast": ["uvloop>=0.19"],
        "vm": ["virtme-ng>=1.30"],
        "bench": ["matplotlib>=3.8"],  # python -m bench --plot
        # pinned to a minor release: a newer ruff or mypy may find new things and fail CI
        "lint": ["ruff>=0.17,<0.18", "mypy>=2.4,<2.5", "types-PyYAML>=6.0,<7"],
    },
    entry_points={"console_scripts": ["kproxy=kproxy.cli.main:main"]},
)
