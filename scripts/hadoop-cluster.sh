#!/usr/bin/env bash
# Start, stop and inspect a real single-node Hadoop (HDFS + YARN) on 127.0.0.1.
#
#   scripts/hadoop-cluster.sh fetch|start|stop|status|env [--dir DIR] [--jars DIR] [--python PY]
#
#   fetch   download the Apache Hadoop jars from Maven Central (needs mvn; cached)
#   start   configure, format HDFS on first start, start NameNode, DataNode,
#           ResourceManager, NodeManager and JobHistoryServer; wait until ready; print URLs
#   stop    stop the processes it started, by PID
#   status  which daemons run (exit 0 when all do, 3 otherwise) and the URLs
#   env     shell exports for clients:  eval "$(scripts/hadoop-cluster.sh env)"
#
# Needs Java (17 works) and Python 3. The Python that runs this script ($PYTHON, default
# python3) is also what YARN containers run as python3, unless --python says otherwise.
set -euo pipefail
if [[ ${1:-} == -h || ${1:-} == --help ]]; then
    sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 0
fi
exec "${PYTHON:-python3}" "$(dirname "${BASH_SOURCE[0]}")/hadoop_cluster.py" "$@"
