#!/usr/bin/env bash
# Runs the launch tests (test/launch/) with the real ROS 2 launch, launch_ros, launch_testing and ros2 CLI
# (`make test-launch`; .ci/run calls it after `make test`). Usage: test/launch/run.sh [pytest args]
#
# 1. ../shared/tools/ros2-cli builds those tools on PyPI's rclpy wheels into a virtual environment kept in a
#    cache outside the clone (ROS2_ENV); rebuilt only when the kit changes.
# 2. The project's dependencies go into it (pip install -e ".[ros]", torch pinned; redone when setup.py or
#    the clone changes) and colcon builds the package into ROS2_ENV/ws, as on a ROS machine.
# 3. pytest runs test/launch, then the sensor_msgs_py tests of test/test_planner_outputs.py, with
#    SYNCVP_LAUNCH_TESTS_REQUIRED=1: a skip there fails the run.
#
# Environment: ROS2_TOOLS (kit, default ../shared/tools/ros2-cli), ROS2_ENV (default
# ~/.cache/syncvp/ros2cli), ROS_DOMAIN_ID (default: the one the kit drew for ROS2_ENV).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
TOOLS=$(cd "${ROS2_TOOLS:-$ROOT/../shared/tools/ros2-cli}" && pwd)
ENV_DIR=${ROS2_ENV:-${XDG_CACHE_HOME:-$HOME/.cache}/syncvp/ros2cli}
WS=$ENV_DIR/ws
T0=$(date +%s)
say() { printf '[test-launch %3ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }

mkdir -p "$(dirname "$ENV_DIR")"
exec 9>"$ENV_DIR.lock"
flock 9  # one run per cache at a time: parallel CI runs on one machine would rebuild it under each other

kit=$(cat "$TOOLS"/setup.sh "$TOOLS"/build_venv.sh "$TOOLS"/tested-versions.txt "$TOOLS"/src.tar.gz | sha256sum)
if [ "$(cat "$ENV_DIR/.syncvp-kit" 2>/dev/null)" != "$kit" ]; then
  say "building the ROS 2 tools into $ENV_DIR"
  rm -f "$ENV_DIR/.syncvp-kit" "$ENV_DIR/.syncvp-deps"
  "$TOOLS/setup.sh" "$ENV_DIR"
  echo "$kit" > "$ENV_DIR/.syncvp-kit"
fi
set +u  # the environment scripts read unset variables
# shellcheck disable=SC1091
source "$ENV_DIR/bin/ros2env.sh"
set -u

deps=$( (echo "$ROOT"; cat setup.py) | sha256sum)
if [ "$(cat "$ENV_DIR/.syncvp-deps" 2>/dev/null)" != "$deps" ]; then
  say "installing the project and its dependencies into $ENV_DIR"
  # torch pinned (a bare torch pulls a multi-GB CUDA build); setuptools<80 because colcon's ament_python
  # build still runs setup.py develop.
  python -m pip install -q --disable-pip-version-check "setuptools<80" torch==2.13.0 2>&1 | grep -v "^WARNING: Location" || true
  python -m pip install -q --disable-pip-version-check "setuptools<80" -e ".[ros]" 2>&1 | grep -v "^WARNING: Location" || true
  python -c "import torch, syncvp_ros" || { echo "test-launch: installing the project failed" >&2; exit 1; }
  echo "$deps" > "$ENV_DIR/.syncvp-deps"
fi

say "colcon build (symlink install) into $WS"
mkdir -p "$WS"
if ! colcon --log-base "$WS/log" build --base-paths "$ROOT" --build-base "$WS/build" --install-base "$WS/install" \
    --symlink-install >"$WS/colcon.log" 2>&1; then
  cat "$WS/colcon.log"; echo "test-launch: colcon build failed" >&2; exit 1
fi
set +u
# shellcheck disable=SC1091
source "$WS/install/setup.bash"
set -u

say "pytest test/launch (ROS_DOMAIN_ID=$ROS_DOMAIN_ID)"
rc=0
# --confcutdir: launch_testing 3.7's collection hook imports every test file on the way from the rootdir,
# so without it the other tests' module-level skips would end the collection of test/launch.
SYNCVP_LAUNCH_TESTS_REQUIRED=1 OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 \
  python -m pytest --confcutdir test/launch -rs test/launch "$@" || rc=$?
if [ "$rc" -eq 5 ]; then echo "test-launch: pytest collected no tests"; rc=1; fi
# The tests that read our clouds with ROS 2's own sensor_msgs_py (skipped in `make test`, where it is missing);
# launch_testing's plugins off, because their collection hook stops at the other files' module-level skips.
say "pytest test/test_planner_outputs.py (sensor_msgs_py)"
SYNCVP_LAUNCH_TESTS_REQUIRED=1 OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 \
  python -m pytest -q -rs -p no:launch_testing -p no:launch_ros -p no:launch_pytest \
  test/test_planner_outputs.py -k sensor_msgs_py || rc=$((rc ? rc : $?))
say "done, exit code $rc"
exit "$rc"
