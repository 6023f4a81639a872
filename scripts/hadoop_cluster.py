"""A real single-node Hadoop (HDFS + YARN) on 127.0.0.1 for tests, benchmarks and trials.

Run through ``scripts/hadoop-cluster.sh``::

    scripts/hadoop-cluster.sh fetch      # the Apache Hadoop jars from Maven Central (cached)
    scripts/hadoop-cluster.sh start      # NameNode, DataNode, ResourceManager, NodeManager,
                                         # JobHistoryServer; waits until ready, prints URLs
    eval "$(scripts/hadoop-cluster.sh env)"   # HADOOP_HOME, HADOOP_CONF_DIR, PATH, CRM_WEBHDFS_URL
    scripts/hadoop-cluster.sh status
    scripts/hadoop-cluster.sh stop       # stops, by PID, the processes it started

Everything lives in one cluster directory (``--dir``, ``$CRM_HADOOP_DIR``, default
``~/.cache/crm-mapreduce/hadoop-cluster``), which is the cluster's ``HADOOP_HOME``:
``lib`` (a link to the jar cache), ``bin/hadoop`` (the launcher), ``etc/hadoop`` (the
configuration written at each start), ``data``, ``logs``, ``pids`` and ``cluster.json``.
Jars are cached in ``--jars`` (``$CRM_HADOOP_JARS``, default
``~/.cache/crm-mapreduce/hadoop-3.5.0-jars``) and shared by every cluster directory.

Every address is bound to 127.0.0.1. Ports are the usual Hadoop ones when free, otherwise
free ones chosen at start (so a test cluster can run beside a user's). YARN containers
find ``python3`` first on their ``PATH`` as a wrapper around ``--python`` (default: the
interpreter running this script), which is what mrjob's ``python_bin: python3`` runs.

Standard library only.
"""

import argparse
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from xml.sax.saxutils import escape

HADOOP_VERSION = "3.5.0"
HERE = os.path.dirname(os.path.abspath(__file__))
POM = os.path.join(HERE, "hadoop", "pom.xml")
LAUNCHER = os.path.join(HERE, "hadoop", "hadoop")
LOOPBACK_SOURCE = os.path.join(HERE, "hadoop", "loopback_bind.c")
CACHE = os.path.join(os.path.expanduser("~"), ".cache", "crm-mapreduce")
DEFAULT_JARS = os.path.join(CACHE, f"hadoop-{HADOOP_VERSION}-jars")
DEFAULT_DIR = os.path.join(CACHE, "hadoop-cluster")
HOST = "127.0.0.1"

# name -> (main class, heap)
DAEMONS = {
    "namenode": ("org.apache.hadoop.hdfs.server.namenode.NameNode", "512m"),
    "datanode": ("org.apache.hadoop.hdfs.server.datanode.DataNode", "384m"),
    "resourcemanager": (
        "org.apache.hadoop.yarn.server.resourcemanager.ResourceManager",
        "512m",
    ),
    "nodemanager": ("org.apache.hadoop.yarn.server.nodemanager.NodeManager", "512m"),
    "historyserver": ("org.apache.hadoop.mapreduce.v2.hs.JobHistoryServer", "384m"),
}
START_ORDER = ("namenode", "datanode", "resourcemanager", "nodemanager", "historyserver")

# port name -> the usual Hadoop port, tried first
PORTS = {
    "nn_rpc": 8020,
    "nn_http": 9870,
    "dn_data": 9866,
    "dn_http": 9864,
    "dn_ipc": 9867,
    "rm": 8032,
    "rm_scheduler": 8030,
    "rm_tracker": 8031,
    "rm_admin": 8033,
    "rm_http": 8088,
    "nm": 8041,
    "nm_localizer": 8040,
    "nm_http": 8042,
    "shuffle": 13562,
    "jhs": 10020,
    "jhs_http": 19888,
    "jhs_admin": 10033,
}

# a small machine: 2 cores, and containers that mostly wait on Python
YARN_MEMORY_MB = 8192
YARN_VCORES = 8
CONTAINER_MB = 512
CONTAINER_HEAP = "-Xmx384m -Djava.net.preferIPv4Stack=true"


class ClusterError(RuntimeError):
    """The cluster cannot be fetched, started or stopped; the message says why."""


def log(message):
    print(f"hadoop-cluster: {message}", file=sys.stderr, flush=True)


# -- places ------------------------------------------------------------------------------------


class Layout:
    """The files of one cluster directory."""

    def __init__(self, cluster_dir, jars_dir):
        self.root = os.path.abspath(cluster_dir)
        self.jars = os.path.abspath(jars_dir)
        self.lib = os.path.join(self.root, "lib")
        self.bin = os.path.join(self.root, "bin")
        self.conf = os.path.join(self.root, "etc", "hadoop")
        self.data = os.path.join(self.root, "data")
        self.logs = os.path.join(self.root, "logs")
        self.pids = os.path.join(self.root, "pids")
        self.state = os.path.join(self.root, "cluster.json")
        self.streaming_dir = os.path.join(self.root, "share", "hadoop", "tools", "lib")
        # the hadoop-hdfs jar on Maven Central has no webapps/ (the tarball has them beside
        # it): HttpServer2 needs webapps/<name> on the classpath to serve WebHDFS
        self.hdfs_resources = os.path.join(self.root, "share", "hadoop", "hdfs")
        self.loopback_lib = os.path.join(self.root, "native", "libloopback_bind.so")

    @property
    def classpath(self):
        return f"{self.conf}:{self.hdfs_resources}:{self.lib}/*"

    def pid_file(self, name):
        return os.path.join(self.pids, f"{name}.pid")


# -- fetch -------------------------------------------------------------------------------------


def _jars_complete(jars_dir):
    marker = os.path.join(jars_dir, ".complete")
    return os.path.exists(marker)


def fetch(layout, quiet=False):
    """Download the Hadoop jars into the jar cache with Maven, once.

    Raises
    ------
    ClusterError
        When Maven is missing or fails (its output is shown).
    """
    if _jars_complete(layout.jars):
        if not quiet:
            log(f"jars already in {layout.jars}")
        return
    os.makedirs(os.path.dirname(layout.jars), exist_ok=True)
    # two clusters starting at once (parallel test sessions) fetch one at a time
    with open(layout.jars + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _jars_complete(layout.jars):
            return
        _fetch_locked(layout)


def _fetch_locked(layout):
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ClusterError(
            "Maven (mvn) is not installed: it fetches the Hadoop jars from Maven Central "
            "(Debian: apt-get install maven)"
        )
    staging = layout.jars + ".partial"
    shutil.rmtree(staging, ignore_errors=True)
    log(f"fetching Apache Hadoop {HADOOP_VERSION} jars from Maven Central into {layout.jars}")
    started = time.monotonic()
    cmd = [
        mvn,
        "-B",
        "-q",
        "-f",
        POM,
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
        "-DincludeScope=runtime",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise ClusterError(
            f"mvn failed (exit {result.returncode}) fetching the Hadoop jars:\n"
            f"{(result.stdout + result.stderr)[-4000:]}"
        )
    jars = [n for n in os.listdir(staging) if n.endswith(".jar")]
    if not any(n.startswith("hadoop-streaming-") for n in jars):
        raise ClusterError(f"no hadoop-streaming jar among the {len(jars)} jars fetched")
    with open(os.path.join(staging, ".complete"), "w") as f:
        f.write(f"{len(jars)} jars\n")
    shutil.rmtree(layout.jars, ignore_errors=True)
    os.makedirs(os.path.dirname(layout.jars), exist_ok=True)
    os.rename(staging, layout.jars)
    log(f"fetched {len(jars)} jars in {time.monotonic() - started:.1f} s")


def streaming_jar(layout):
    """Path of the Hadoop Streaming jar in the jar cache."""
    for name in sorted(os.listdir(layout.jars)):
        if name.startswith("hadoop-streaming-") and name.endswith(".jar"):
            return os.path.join(layout.jars, name)
    raise ClusterError(f"no hadoop-streaming jar in {layout.jars}; run fetch")


# -- configuration -----------------------------------------------------------------------------


def _port_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _free_port(taken):
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        if port not in taken:
            return port


def choose_ports():
    """The usual Hadoop ports where free on 127.0.0.1, free ephemeral ones elsewhere."""
    ports = {}
    taken = set()
    for name, usual in PORTS.items():
        port = usual if usual not in taken and _port_free(usual) else _free_port(taken)
        ports[name] = port
        taken.add(port)
    return ports


def _site(properties):
    lines = ['<?xml version="1.0"?>', "<configuration>"]
    for name, value in properties.items():
        lines.append(
            f"  <property><name>{escape(name)}</name><value>{escape(str(value))}</value></property>"
        )
    lines.append("</configuration>")
    return "\n".join(lines) + "\n"


LOG4J = """\
# Written by scripts/hadoop_cluster.py. Daemons log to files (RFA); clients to standard
# error (console), never to standard output, which mrjob parses.
hadoop.root.logger=INFO,console
hadoop.log.dir=.
hadoop.log.file=hadoop.log
log4j.rootLogger=${hadoop.root.logger}
log4j.threshold=ALL
log4j.appender.console=org.apache.log4j.ConsoleAppender
log4j.appender.console.target=System.err
log4j.appender.console.layout=org.apache.log4j.PatternLayout
log4j.appender.console.layout.ConversionPattern=%d{yy/MM/dd HH:mm:ss} %p %c{2}: %m%n
log4j.appender.RFA=org.apache.log4j.RollingFileAppender
log4j.appender.RFA.File=${hadoop.log.dir}/${hadoop.log.file}
log4j.appender.RFA.MaxFileSize=64MB
log4j.appender.RFA.MaxBackupIndex=2
log4j.appender.RFA.layout=org.apache.log4j.PatternLayout
log4j.appender.RFA.layout.ConversionPattern=%d{ISO8601} %p %c: %m%n
log4j.logger.org.apache.hadoop.util.NativeCodeLoader=ERROR
log4j.logger.org.apache.hadoop.conf.Configuration.deprecation=WARN
"""


def write_config(layout, ports, loopback_lib=None):
    """Write core-, hdfs-, yarn-, mapred-site.xml, the scheduler and log4j configuration."""
    a = {name: f"{HOST}:{port}" for name, port in ports.items()}
    classpath = layout.classpath.replace(":", ",")
    data = layout.data
    core = {
        "fs.defaultFS": f"hdfs://{a['nn_rpc']}",
        "hadoop.tmp.dir": os.path.join(data, "tmp"),
        "hadoop.security.authentication": "simple",
    }
    hdfs = {
        "dfs.replication": 1,
        "dfs.namenode.name.dir": os.path.join(data, "name"),
        "dfs.datanode.data.dir": os.path.join(data, "datanode"),
        "dfs.namenode.rpc-address": a["nn_rpc"],
        "dfs.namenode.rpc-bind-host": HOST,
        "dfs.namenode.http-address": a["nn_http"],
        "dfs.namenode.http-bind-host": HOST,
        "dfs.namenode.secondary.http-address": f"{HOST}:0",
        "dfs.datanode.address": a["dn_data"],
        "dfs.datanode.http.address": a["dn_http"],
        "dfs.datanode.ipc.address": a["dn_ipc"],
        "dfs.datanode.hostname": HOST,
        "dfs.namenode.datanode.registration.ip-hostname-check": "false",
        "dfs.webhdfs.enabled": "true",
        "dfs.permissions.enabled": "false",
        "dfs.namenode.safemode.extension": 0,
        "dfs.namenode.safemode.min.datanodes": 1,
        "dfs.heartbeat.interval": 1,
        "dfs.namenode.heartbeat.recheck-interval": 30000,
        "dfs.blocksize": 64 * 1024 * 1024,
        # closing a file waited 0.4 s for the DataNode's block report (WebHDFS writes):
        # close with the last block committed, and poll sooner
        "dfs.namenode.file.close.num-committed-allowed": 1,
        "dfs.client.block.write.locateFollowingBlock.initial.delay.ms": 50,
    }
    yarn = {
        "yarn.resourcemanager.hostname": HOST,
        "yarn.resourcemanager.bind-host": HOST,
        "yarn.resourcemanager.address": a["rm"],
        "yarn.resourcemanager.scheduler.address": a["rm_scheduler"],
        "yarn.resourcemanager.resource-tracker.address": a["rm_tracker"],
        "yarn.resourcemanager.admin.address": a["rm_admin"],
        "yarn.resourcemanager.webapp.address": a["rm_http"],
        "yarn.nodemanager.hostname": HOST,
        "yarn.nodemanager.bind-host": HOST,
        "yarn.nodemanager.address": a["nm"],
        "yarn.nodemanager.localizer.address": a["nm_localizer"],
        "yarn.nodemanager.webapp.address": a["nm_http"],
        "yarn.nodemanager.aux-services": "mapreduce_shuffle",
        "yarn.nodemanager.aux-services.mapreduce_shuffle.class": (
            "org.apache.hadoop.mapred.ShuffleHandler"
        ),
        "yarn.nodemanager.resource.memory-mb": YARN_MEMORY_MB,
        "yarn.nodemanager.resource.cpu-vcores": YARN_VCORES,
        "yarn.scheduler.minimum-allocation-mb": 128,
        "yarn.scheduler.maximum-allocation-mb": YARN_MEMORY_MB,
        "yarn.nodemanager.vmem-check-enabled": "false",
        "yarn.nodemanager.local-dirs": os.path.join(data, "nm-local"),
        "yarn.nodemanager.log-dirs": os.path.join(layout.logs, "containers"),
        "yarn.nodemanager.delete.debug-delay-sec": 600,
        # a nearly full disk must not turn the only node unhealthy
        "yarn.nodemanager.disk-health-checker.max-disk-utilization-per-disk-percentage": 99.9,
        "yarn.nodemanager.disk-health-checker.min-free-space-per-disk-mb": 256,
        "yarn.nodemanager.env-whitelist": (
            "JAVA_HOME,HADOOP_COMMON_HOME,HADOOP_HDFS_HOME,HADOOP_CONF_DIR,"
            "CLASSPATH_PREPEND_DISTCACHE,HADOOP_YARN_HOME,HADOOP_HOME,HADOOP_MAPRED_HOME,"
            "PATH,LANG,TZ"
        ),
        "yarn.application.classpath": classpath,
        # forced into every container: the loopback shim (see loopback_bind.c)
        "yarn.nodemanager.admin-env": "MALLOC_ARENA_MAX=$MALLOC_ARENA_MAX"
        + (f",LD_PRELOAD={loopback_lib}" if loopback_lib else ""),
        "yarn.log-aggregation-enable": "false",
        "yarn.nodemanager.log.retain-seconds": 3600,
        "yarn.resourcemanager.nodemanager-connect-retries": 10,
        "yarn.resourcemanager.nodemanagers.heartbeat-interval-ms": 250,
    }
    heap = CONTAINER_HEAP
    mapred = {
        "mapreduce.framework.name": "yarn",
        "mapreduce.application.classpath": classpath,
        "yarn.app.mapreduce.am.resource.mb": CONTAINER_MB,
        "yarn.app.mapreduce.am.command-opts": heap,
        "yarn.app.mapreduce.am.staging-dir": "/tmp/hadoop-yarn/staging",
        "yarn.app.mapreduce.am.env": f"HADOOP_MAPRED_HOME={layout.root}",
        "mapreduce.map.env": f"HADOOP_MAPRED_HOME={layout.root}",
        "mapreduce.reduce.env": f"HADOOP_MAPRED_HOME={layout.root}",
        "mapreduce.map.memory.mb": CONTAINER_MB,
        "mapreduce.reduce.memory.mb": CONTAINER_MB,
        "mapreduce.map.java.opts": heap,
        "mapreduce.reduce.java.opts": heap,
        "mapreduce.task.io.sort.mb": 100,
        "mapreduce.shuffle.port": ports["shuffle"],
        "mapreduce.jobhistory.address": a["jhs"],
        "mapreduce.jobhistory.webapp.address": a["jhs_http"],
        "mapreduce.jobhistory.admin.address": a["jhs_admin"],
        "mapreduce.jobhistory.bind-host": HOST,
        # reducers' JVMs start while maps run (0.05 is Hadoop's default)
        "mapreduce.job.reduce.slowstart.completedmaps": 0.05,
        # allocate containers within a quarter second, not Hadoop's one-second beat
        "yarn.app.mapreduce.am.scheduler.heartbeat.interval-ms": 250,
        "mapreduce.client.progressmonitor.pollinterval": 500,
        "mapreduce.client.completion.pollinterval": 500,
    }
    scheduler = {
        "yarn.scheduler.capacity.root.queues": "default",
        "yarn.scheduler.capacity.root.default.capacity": 100,
        "yarn.scheduler.capacity.root.default.maximum-capacity": 100,
        "yarn.scheduler.capacity.maximum-am-resource-percent": 0.5,
        "yarn.scheduler.capacity.root.default.acl_submit_applications": "*",
        "yarn.scheduler.capacity.node-locality-delay": -1,
    }
    os.makedirs(layout.conf, exist_ok=True)
    files = {
        "core-site.xml": _site(core),
        "hdfs-site.xml": _site(hdfs),
        "yarn-site.xml": _site(yarn),
        "mapred-site.xml": _site(mapred),
        "capacity-scheduler.xml": _site(scheduler),
        "log4j.properties": LOG4J,
    }
    for name, text in files.items():
        with open(os.path.join(layout.conf, name), "w") as f:
            f.write(text)


# -- processes ---------------------------------------------------------------------------------


def _java():
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not java or not os.path.exists(java):
        raise ClusterError("java not found: install a JDK (17 works) or set JAVA_HOME")
    return java


def _java_home(java):
    return os.path.dirname(os.path.dirname(os.path.realpath(java)))


def _read_pid(layout, name):
    try:
        with open(layout.pid_file(name)) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _alive(pid, name):
    """Whether ``pid`` is a live process running daemon ``name``'s class (not a reused PID)."""
    if pid is None:
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().decode("utf-8", "replace")
    except OSError:
        return False
    return DAEMONS[name][0] in cmdline


def _python_wrapper(layout, python):
    """``bin/python3`` (for YARN containers) that runs ``python``."""
    python = os.path.abspath(python)
    if not os.access(python, os.X_OK):
        raise ClusterError(f"--python {python!r} is not an executable")
    path = os.path.join(layout.bin, "python3")
    with open(path, "w") as f:
        f.write(f'#!/bin/sh\nexec "{python}" "$@"\n')
    os.chmod(path, 0o755)


WEB_XML = """<?xml version="1.0" encoding="UTF-8"?>
<web-app xmlns="http://xmlns.jcp.org/xml/ns/javaee" version="3.1"/>
"""


def prepare(layout, python):
    """Link the jars, install the launcher and the python wrapper in the cluster dir."""
    for d in (layout.root, layout.bin, layout.data, layout.logs, layout.pids):
        os.makedirs(d, exist_ok=True)
    if os.path.islink(layout.lib) or os.path.exists(layout.lib):
        if os.path.realpath(layout.lib) != os.path.realpath(layout.jars):
            os.remove(layout.lib)
    if not os.path.exists(layout.lib):
        os.symlink(layout.jars, layout.lib)
    # mrjob looks for the streaming jar under $HADOOP_HOME (and does not follow the link)
    os.makedirs(layout.streaming_dir, exist_ok=True)
    jar = streaming_jar(layout)
    link = os.path.join(layout.streaming_dir, os.path.basename(jar))
    for old in os.listdir(layout.streaming_dir):
        os.remove(os.path.join(layout.streaming_dir, old))
    os.symlink(jar, link)
    for webapp in ("hdfs", "datanode", "secondary"):
        web_inf = os.path.join(layout.hdfs_resources, "webapps", webapp, "WEB-INF")
        os.makedirs(web_inf, exist_ok=True)
        with open(os.path.join(web_inf, "web.xml"), "w") as f:
            f.write(WEB_XML)
    shutil.copyfile(LAUNCHER, os.path.join(layout.bin, "hadoop"))
    os.chmod(os.path.join(layout.bin, "hadoop"), 0o755)
    _python_wrapper(layout, python)


def build_loopback_shim(layout):
    """Compile ``loopback_bind.c`` (see its comment) and return the library's path.

    Returns ``None``, with a warning naming what will listen on every interface, when no C
    compiler is installed.
    """
    lib = layout.loopback_lib
    if os.path.exists(lib) and os.path.getmtime(lib) >= os.path.getmtime(LOOPBACK_SOURCE):
        return lib
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        log(
            "warning: no C compiler (cc): the MapReduce shuffle service and application "
            "masters will listen on every interface, not only 127.0.0.1"
        )
        return None
    os.makedirs(os.path.dirname(lib), exist_ok=True)
    cmd = [cc, "-shared", "-fPIC", "-O2", "-o", lib, LOOPBACK_SOURCE, "-ldl"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise ClusterError(f"{' '.join(cmd)} failed:\n{result.stderr[-2000:]}")
    return lib


def _daemon_env(layout, java):
    env = dict(os.environ)
    env.update(
        HADOOP_HOME=layout.root,
        HADOOP_CONF_DIR=layout.conf,
        HADOOP_MAPRED_HOME=layout.root,
        HADOOP_YARN_HOME=layout.root,
        HADOOP_COMMON_HOME=layout.root,
        HADOOP_HDFS_HOME=layout.root,
        JAVA_HOME=_java_home(java),
        # containers inherit PATH: the cluster's python3 and hadoop come first
        PATH=f"{layout.bin}{os.pathsep}{env.get('PATH', '')}",
        TZ="UTC",
    )
    if os.path.exists(layout.loopback_lib):
        env["LD_PRELOAD"] = layout.loopback_lib
    return env


def _java_cmd(layout, java, name, *args):
    main_class, heap = DAEMONS[name]
    return [
        java,
        f"-Xmx{heap}",
        "-XX:+UseSerialGC",
        f"-Dhadoop.log.dir={layout.logs}",
        f"-Dhadoop.log.file={name}.log",
        "-Dhadoop.root.logger=INFO,RFA",
        f"-Dhadoop.home.dir={layout.root}",
        f"-Dyarn.log.dir={layout.logs}",
        f"-Dyarn.log.file={name}.log",
        "-Djava.net.preferIPv4Stack=true",
        "-cp",
        layout.classpath,
        main_class,
        *args,
    ]


def format_namenode(layout, java):
    """Format HDFS on first start (when the name directory does not exist yet)."""
    if os.path.exists(os.path.join(layout.data, "name", "current", "VERSION")):
        return
    log("formatting the NameNode (first start)")
    out_path = os.path.join(layout.logs, "namenode-format.out")
    with open(out_path, "wb") as out:
        code = subprocess.call(
            _java_cmd(layout, java, "namenode", "-format", "-nonInteractive", "-force"),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_daemon_env(layout, java),
            cwd=layout.root,
        )
    if code != 0:
        raise ClusterError(f"formatting the NameNode failed (exit {code}): see {out_path}")


def start_daemon(layout, java, name):
    """Start one daemon in its own session, output to ``logs/<name>.out``; return its PID."""
    pid = _read_pid(layout, name)
    if _alive(pid, name):
        log(f"{name} already running (pid {pid})")
        return pid
    out = open(os.path.join(layout.logs, f"{name}.out"), "ab")
    try:
        proc = subprocess.Popen(
            _java_cmd(layout, java, name),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_daemon_env(layout, java),
            cwd=layout.root,
            start_new_session=True,
        )
    finally:
        out.close()
    with open(layout.pid_file(name), "w") as f:
        f.write(f"{proc.pid}\n")
    # until the forked child has exec'd java, its command line is still this Python's
    deadline = time.monotonic() + 10
    while not _alive(proc.pid, name) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc.pid


def stop_daemon(layout, name, timeout=20.0):
    """Stop one daemon by its PID file: SIGTERM, then SIGKILL after ``timeout`` seconds.

    Returns
    -------
    bool
        Whether a running process was stopped.
    """
    pid = _read_pid(layout, name)
    stopped = False
    if _alive(pid, name):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid, name) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid, name):
            log(f"{name} (pid {pid}) ignored SIGTERM for {timeout:.0f} s: killing it")
            os.kill(pid, signal.SIGKILL)
        stopped = True
    try:
        os.remove(layout.pid_file(name))
    except FileNotFoundError:
        pass
    return stopped


# -- readiness ---------------------------------------------------------------------------------


def _get_json(url, timeout=5.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read().decode("utf-8"))


def _hdfs_ready(ports):
    url = f"http://{HOST}:{ports['nn_http']}/jmx?qry=Hadoop:service=NameNode,name=FSNamesystemState"
    beans = _get_json(url)["beans"]
    if not beans or beans[0].get("NumLiveDataNodes", 0) < 1:
        return "waiting for a live DataNode"
    info = _get_json(
        f"http://{HOST}:{ports['nn_http']}/jmx?qry=Hadoop:service=NameNode,name=NameNodeInfo"
    )["beans"]
    if info and info[0].get("Safemode"):
        return "NameNode in safe mode"
    return None


def _yarn_ready(ports):
    metrics = _get_json(f"http://{HOST}:{ports['rm_http']}/ws/v1/cluster/metrics")
    if metrics["clusterMetrics"].get("activeNodes", 0) < 1:
        return "waiting for a NodeManager to register"
    return None


def _history_ready(ports):
    _get_json(f"http://{HOST}:{ports['jhs_http']}/ws/v1/history/info")
    return None


def wait_ready(layout, ports, timeout, daemons=START_ORDER):
    """Wait until ``daemons`` are ready: HDFS has a live DataNode out of safe mode, YARN an
    active node, the history server answers. Raise :class:`ClusterError` with the last
    reason (or the log of a daemon that died) otherwise."""
    checks = {
        "datanode": ("HDFS", _hdfs_ready),
        "nodemanager": ("YARN", _yarn_ready),
        "historyserver": ("history", _history_ready),
    }
    deadline = time.monotonic() + timeout
    reason = "not started"
    pending = [checks[name] for name in daemons if name in checks]
    while pending:
        for name in daemons:
            if not _alive(_read_pid(layout, name), name):
                raise ClusterError(
                    f"the {name} exited during start-up: see {layout.logs}/{name}.log and "
                    f"{layout.logs}/{name}.out\n{_tail(layout, name)}"
                )
        label, check = pending[0]
        try:
            reason = check(ports)
        except (urllib.error.URLError, OSError, ValueError, KeyError) as e:
            reason = f"{label} not answering ({e})"
        if reason is None:
            pending.pop(0)
            continue
        if time.monotonic() > deadline:
            raise ClusterError(f"cluster not ready after {timeout:.0f} s: {reason}")
        time.sleep(0.5)


def _tail(layout, name, lines=15):
    text = []
    for suffix in (".out", ".log"):
        path = os.path.join(layout.logs, name + suffix)
        if os.path.exists(path):
            with open(path, errors="replace") as f:
                text += f.readlines()[-lines:]
    return "".join(text)


# -- commands ----------------------------------------------------------------------------------


def urls(ports):
    """The cluster's addresses, for people and for ``cluster.json``."""
    return {
        "fs.defaultFS": f"hdfs://{HOST}:{ports['nn_rpc']}",
        "webhdfs": f"http://{HOST}:{ports['nn_http']}",
        "namenode_ui": f"http://{HOST}:{ports['nn_http']}",
        "resourcemanager_ui": f"http://{HOST}:{ports['rm_http']}",
        "nodemanager_ui": f"http://{HOST}:{ports['nm_http']}",
        "historyserver_ui": f"http://{HOST}:{ports['jhs_http']}",
    }


def _load_state(layout):
    try:
        with open(layout.state) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def running(layout):
    """Names of this cluster's daemons that are running."""
    return [n for n in START_ORDER if _alive(_read_pid(layout, n), n)]


def start(layout, python, timeout):
    """Fetch if needed, configure, start every daemon, wait until ready; return the state."""
    java = _java()
    fetch(layout, quiet=True)
    prepare(layout, python)
    loopback = build_loopback_shim(layout)
    state = _load_state(layout)
    alive = running(layout)
    if alive and state:
        if len(alive) == len(START_ORDER):
            log(f"already running: {', '.join(alive)}")
            wait_ready(layout, state["ports"], timeout)
            return state
        log(f"partly running ({', '.join(alive)}): restarting")
        stop(layout)
    elif alive:
        stop(layout)
    started = time.monotonic()
    ports = choose_ports()
    write_config(layout, ports, loopback)
    format_namenode(layout, java)
    state = {
        "hadoop_version": HADOOP_VERSION,
        "home": layout.root,
        "conf_dir": layout.conf,
        "hadoop_bin": os.path.join(layout.bin, "hadoop"),
        "streaming_jar": os.path.join(
            layout.streaming_dir, os.path.basename(streaming_jar(layout))
        ),
        "python": os.path.abspath(python),
        "ports": ports,
        "urls": urls(ports),
        "logs": layout.logs,
    }
    with open(layout.state, "w") as f:
        json.dump(state, f, indent=2)
    try:
        # HDFS first: the history server and the job clients need a writable file system
        for group in (
            ("namenode", "datanode"),
            ("resourcemanager", "nodemanager", "historyserver"),
        ):
            for name in group:
                pid = start_daemon(layout, java, name)
                log(f"started {name} (pid {pid})")
            wait_ready(layout, ports, timeout, group)
    except BaseException:
        log("start failed: stopping what was started")
        stop(layout)
        raise
    log(f"ready in {time.monotonic() - started:.1f} s")
    return state


def stop(layout):
    """Stop this cluster's daemons (reverse start order), by PID."""
    stopped = []
    for name in reversed(START_ORDER):
        if stop_daemon(layout, name):
            stopped.append(name)
    return stopped


def env_lines(layout, state):
    """Shell ``export`` lines that point Hadoop clients, mrjob and hdfs_io at the cluster."""
    values = {
        "HADOOP_HOME": layout.root,
        "HADOOP_CONF_DIR": layout.conf,
        "HADOOP_STREAMING_JAR": state["streaming_jar"],
        "CRM_WEBHDFS_URL": state["urls"]["webhdfs"],
        "CRM_HDFS_URL": state["urls"]["fs.defaultFS"],
    }
    lines = [f"export {k}='{v}'" for k, v in values.items()]
    lines.append(f"export PATH='{layout.bin}':\"$PATH\"")
    return lines


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="hadoop-cluster.sh",
        description="A single-node Hadoop (HDFS + YARN) on 127.0.0.1.",
    )
    p.add_argument("command", choices=["fetch", "start", "stop", "status", "env"])
    p.add_argument(
        "--dir",
        default=os.environ.get("CRM_HADOOP_DIR", DEFAULT_DIR),
        help="cluster directory, its HADOOP_HOME ($CRM_HADOOP_DIR; default: %(default)s)",
    )
    p.add_argument(
        "--jars",
        default=os.environ.get("CRM_HADOOP_JARS", DEFAULT_JARS),
        help="jar cache ($CRM_HADOOP_JARS; default: %(default)s)",
    )
    p.add_argument(
        "--python",
        default=sys.executable,
        help="the Python YARN containers run as python3 (default: %(default)s)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=180.0,
        help="seconds to wait for the cluster to be ready (default: %(default)s)",
    )
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    layout = Layout(args.dir, args.jars)
    try:
        if args.command == "fetch":
            fetch(layout)
        elif args.command == "start":
            state = start(layout, args.python, args.timeout)
            for name, url in state["urls"].items():
                print(f"{name:20} {url}")
            print(f"{'HADOOP_HOME':20} {layout.root}")
            print(f"{'logs':20} {layout.logs}")
            print(f'use it:  eval "$({os.path.join(HERE, "hadoop-cluster.sh")} env)"')
        elif args.command == "stop":
            stopped = stop(layout)
            log(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
        elif args.command == "status":
            alive = running(layout)
            state = _load_state(layout)
            for name in START_ORDER:
                pid = _read_pid(layout, name)
                status = f"running (pid {pid})" if name in alive else "stopped"
                print(f"{name:16} {status}")
            if state and alive:
                for name, url in state["urls"].items():
                    print(f"{name:20} {url}")
            return 0 if len(alive) == len(START_ORDER) else 3
        elif args.command == "env":
            state = _load_state(layout)
            if state is None:
                raise ClusterError(f"no cluster in {layout.root}: run start first")
            print("\n".join(env_lines(layout, state)))
    except ClusterError as e:
        log(f"error: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
