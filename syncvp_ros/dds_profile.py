"""A Fast DDS profile for large images between processes on one machine.

    python -m syncvp_ros.dds_profile > ~/syncvp_fastdds.xml
    export FASTDDS_DEFAULT_PROFILES_FILE=~/syncvp_fastdds.xml   # in every terminal / launch environment

Why: Fast DDS's default shared-memory segment is 0.5 MB. A 640x480 image (0.9 MB rgb8, 1.2 MB 32FC1)
does not fit, so it goes over UDP in fragments; a burst of them (the node publishes 3 messages per
horizon step at once) overflows the socket buffers, and reliable delivery then waits for the next
heartbeat (seconds). Measured here (bench/node_overhead.py, 24 x 1.2 MB on 24 topics): seconds with the
defaults, ~20-40 ms with this profile's 64 MB shared-memory segment. UDP stays enabled for other hosts.

Only affects Fast DDS (the ROS 2 default rmw). Equivalent settings exist for Cyclone DDS
(``SharedMemory`` / iceoryx, or larger socket buffers).
"""
from __future__ import annotations

import sys

SEGMENT_BYTES = 64 * 1024 * 1024

PROFILE = f"""<?xml version="1.0" encoding="UTF-8" ?>
<!-- syncvp: Fast DDS profile for large images on one host (python -m syncvp_ros.dds_profile). -->
<profiles xmlns="http://www.eprosima.com">
  <transport_descriptors>
    <transport_descriptor>
      <transport_id>shm_large</transport_id>
      <type>SHM</type>
      <segment_size>{SEGMENT_BYTES}</segment_size>
    </transport_descriptor>
    <transport_descriptor>
      <transport_id>udp</transport_id>
      <type>UDPv4</type>
    </transport_descriptor>
  </transport_descriptors>
  <participant profile_name="syncvp_large_data" is_default_profile="true">
    <rtps>
      <userTransports>
        <transport_id>shm_large</transport_id>
        <transport_id>udp</transport_id>
      </userTransports>
      <useBuiltinTransports>false</useBuiltinTransports>
    </rtps>
  </participant>
</profiles>
"""


def main() -> int:
    sys.stdout.write(PROFILE)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
