"""The broken scenario files of test_bad_input.py: a YAML text each, the key path its error must
name (None for errors about the whole file) and a regular expression the message must match.
The expected line is the line of the YAML text marked with ``# <-`` (line 1 when none is marked)."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import pytest

MARK = "# <-"


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    path: str | None          # the key path in the message, None when the error is about the file
    message: str              # regex searched in the message
    line: int | None = None   # None: the marked line (or 1 when nothing is marked)


def case(id: str, text: str, path: str | None, message: str, line: int | None = None):
    return pytest.param(Case(id, textwrap.dedent(text).lstrip("\n"), path, message, line), id=id)


def expected_line(c: Case) -> int:
    if c.line is not None:
        return c.line
    marked = [i for i, ln in enumerate(c.text.splitlines(), start=1) if MARK in ln]
    assert len(marked) <= 1, f"{c.id}: more than one line is marked"
    return marked[0] if marked else 1


CASES = [
    # -- keys --------------------------------------------------------------------------------------
    case("typo-key-driver", """
        name: t
        networks:
          front:
            drvier: bridge   # <-
            subnet: 10.1.0.0/24
        """, "networks.front.drvier", r"unknown key.*did you mean 'driver'"),
    case("typo-key-top-level", """
        name: t
        containres:          # <-
          a: {}
        """, "containres", r"unknown key.*did you mean 'containers'"),
    case("unknown-top-level-key", """
        name: t
        description: x
        colour: blue         # <-
        """, "colour", r"unknown key.*expected one of: .*containers"),
    case("renamed-key-workload", """
        name: t
        containers: {a: {}, b: {}}
        workload:            # <-
          - {app: udp, from: a, to: b, port: 9, count: 1}
        """, "workload", r"renamed.*workloads"),
    case("typo-key-in-flow-mapping-in-list", """
        name: t
        containers: {a: {}, b: {}}
        workloads:
          - {app: udp, from: a, to: b, port: 9, count: 1}
          - {app: udp, from: a, to: b, prot: 10, count: 1}   # <-
        """, "workloads[1].prot", r"unknown key.*did you mean 'port'"),
    case("missing-name", """
        description: no name
        containers:
          a: {}
        """, "name", r"required key is missing"),
    case("missing-port-in-workload", """
        name: t
        containers: {a: {}, b: {}}
        workloads:
          - app: udp         # <-
            from: a
            to: b
            count: 1
        """, "workloads[0].port", r"required key is missing"),
    # -- units -------------------------------------------------------------------------------------
    case("bad-rate-unit", """
        name: t
        hosts:
          h:
            nic:
              rate: 10 gbits   # <-
        """, "hosts.h.nic.rate", r"unknown rate unit 'gbits'.*gbit"),
    case("bad-time-unit", """
        name: t
        hosts: {h1: {}, h2: {}}
        links:
          - endpoints: [h1, h2]
            delay: 5 parsecs   # <-
        """, "links[0].delay", r"unknown time unit 'parsecs'.*\bms\b"),
    case("ambiguous-mbps", """
        name: t
        hosts:
          h:
            nic: {rate: 100mbps}   # <-
        """, "hosts.h.nic.rate", r"bytes per second.*100mbit"),
    case("ambiguous-kbps-workload-rate", """
        name: t
        containers: {a: {}, b: {}}
        workloads:
          - app: udp
            from: a
            to: b
            port: 9
            count: 10
            rate: 500kbps    # <-
        """, "workloads[0].rate", r"bytes per second.*500kbit"),
    case("negative-rate", """
        name: t
        hosts:
          h:
            nic:
              rate: -5mbit   # <-
        """, "hosts.h.nic.rate", r"negative"),
    case("zero-rate", """
        name: t
        hosts:
          h:
            nic:
              rate: 0gbit    # <-
        """, "hosts.h.nic.rate", r"positive"),
    case("negative-delay", """
        name: t
        hosts: {h1: {}, h2: {}}
        links:
          - endpoints: [h1, h2]
            delay: -1ms      # <-
        """, "links[0].delay", r"negative"),
    case("negative-start", """
        name: t
        containers: {a: {}, b: {}}
        workloads:
          - {app: udp, from: a, to: b, port: 9, count: 1, start: -2s}   # <-
        """, "workloads[0].start", r"negative"),
    case("negative-bare-number-time", """
        name: t
        containers: {a: {}, b: {}}
        workloads:
          - app: udp_rr
            from: a
            to: b
            port: 9
            count: 1
            timeout: -1      # <-
        """, "workloads[0].timeout", r"negative"),
    case("bad-size-unit", """
        name: t
        containers: {a: {}, b: {}}
        workloads:
          - app: udp
            from: a
            to: b
            port: 9
            count: 1
            payload: 1 furlong   # <-
        """, "workloads[0].payload", r"unknown size unit 'furlong'"),
    # -- MTU ---------------------------------------------------------------------------------------
    case("mtu-below-68-network", """
        name: t
        networks:
          front:
            mtu: 60          # <-
        """, "networks.front.mtu", r"must be at least 68.*got 60"),
    case("mtu-below-68-driver-option", """
        name: t
        networks:
          front:
            options:
              com.docker.network.driver.mtu: "50"   # <-
        """, "networks.front.options.com.docker.network.driver.mtu", r"MTU.*68.*got '50'"),
    case("icc-false-not-modelled", """
        name: t
        networks:
          front:
            options:
              com.docker.network.bridge.enable_icc: "false"   # <-
        """, "networks.front.options.com.docker.network.bridge.enable_icc", r"not modelled"),
    case("masquerade-not-a-boolean", """
        name: t
        networks:
          front:
            options:
              com.docker.network.bridge.enable_ip_masquerade: "nope"   # <-
        """, "networks.front.options.com.docker.network.bridge.enable_ip_masquerade", r"\"true\" or \"false\".*'nope'"),
    case("mtu-below-68-nic", """
        name: t
        hosts:
          h:
            nic: {mtu: 60}   # <-
        """, "hosts.h.nic.mtu", r"must be at least 68.*got 60"),
    # -- networks and addresses ----------------------------------------------------------------------
    case("overlapping-subnets", """
        name: t
        networks:
          front: {subnet: 10.1.0.0/16}
          back:
            subnet: 10.1.2.0/24   # <-
        """, "networks.back.subnet", r"10\.1\.2\.0/24 overlaps 10\.1\.0\.0/16.*networks\.front\.subnet"),
    case("duplicate-fixed-address", """
        name: t
        networks:
          front: {subnet: 10.1.0.0/24}
        containers:
          a:
            networks:
              front: {ipv4_address: 10.1.0.5}
          b:
            networks:
              front:
                ipv4_address: 10.1.0.5   # <-
        """, "containers.b.networks.front.ipv4_address", r"10\.1\.0\.5 is already used by a"),
    case("fixed-address-on-default-bridge", """
        name: t
        containers:
          a:
            networks:
              bridge:
                ipv4_address: 172.17.0.5   # <-
        """, "containers.a.networks.bridge.ipv4_address", r"user configured subnets"),
    case("fixed-address-outside-subnet", """
        name: t
        networks:
          front: {subnet: 10.1.0.0/24}
        containers:
          a:
            networks:
              front: {ipv4_address: 10.2.0.5}   # <-
        """, "containers.a.networks.front.ipv4_address", r"10\.2\.0\.5 is not a host address of 10\.1\.0\.0/24"),
    case("bad-ipv4-address", """
        name: t
        networks:
          front: {subnet: 10.1.0.0/24}
        containers:
          a:
            networks:
              front:
                ipv4_address: 10.1.0.300   # <-
        """, "containers.a.networks.front.ipv4_address", r"bad IPv4 address '10\.1\.0\.300'"),
    case("unknown-driver", """
        name: t
        networks:
          front:
            driver: weave  # <-
        """, "networks.front.driver", r"unknown driver 'weave'.*bridge"),
    case("gateway-outside-subnet", """
        name: t
        networks:
          front:
            subnet: 10.1.0.0/24
            gateway: 10.9.0.1   # <-
        """, "networks.front.gateway", r"10\.9\.0\.1 is not a host address of 10\.1\.0\.0/24"),
    case("subnet-with-host-bits", """
        name: t
        networks:
          front:
            subnet: 10.0.0.1/24   # <-
        """, "networks.front.subnet", r"'10\.0\.0\.1/24' has host bits set \(did you mean 10\.0\.0\.0/24\?\)"),
    case("predefined-network-name", """
        name: t
        networks:
          bridge:            # <-
            subnet: 10.1.0.0/24
        """, "networks.bridge", r"predefined network"),
    # -- containers ----------------------------------------------------------------------------------
    case("container-unknown-network", """
        name: t
        networks:
          front: {}
        containers:
          a:
            networks:
              - front
              - bakc         # <-
        """, "containers.a.networks[1]", r"unknown network 'bakc'.*front"),
    case("container-unknown-network-mapping", """
        name: t
        containers:
          a:
            networks:
              bakc: {}       # <-
        """, "containers.a.networks.bakc", r"unknown network 'bakc'"),
    case("container-host-and-other-network", """
        name: t
        networks:
          front: {}
        containers:
          a:
            networks:
              - host         # <-
              - front
        """, "containers.a.networks[0]", r"host network cannot join other networks"),
    case("container-unknown-host", """
        name: t
        hosts: {h1: {}}
        containers:
          a:
            host: h9         # <-
        """, "containers.a.host", r"unknown host 'h9'.*h1"),
    case("container-without-host-several-hosts", """
        name: t
        hosts: {h1: {}, h2: {}}
        links:
          - endpoints: [h1, h2]
        containers:
          a: {}              # <-
        """, "containers.a.host", r"required when there are several hosts \(hosts: h1, h2\)"),
    # -- links ---------------------------------------------------------------------------------------
    case("link-host-to-itself", """
        name: t
        hosts: {h1: {}, h2: {}}
        links:
          - endpoints: [h1, h1]   # <-
        """, "links[0].endpoints", r"both ends are on host 'h1'.*two different hosts"),
    case("link-unknown-host", """
        name: t
        hosts: {h1: {}, h2: {}}
        links:
          - endpoints:
              - h1
              - h3           # <-
        """, "links[0].endpoints[1]", r"unknown host 'h3'.*h1, h2"),
    case("route-gateway-not-connected", """
        name: t
        hosts:
          h1:
            routes:
              - dst: 192.168.0.0/16
                via: 10.99.0.1   # <-
          h2: {}
        links:
          - endpoints: [h1, h2]
        """, "hosts.h1.routes[0].via", r"gateway 10\.99\.0\.1 is not on a connected subnet"),
    case("route-bad-destination", """
        name: t
        hosts:
          h:
            routes:
              - dev: lo
                dst: 10.0.0.1/8  # <-
        """, "hosts.h.routes[0].dst", r"host bits set \(did you mean 10\.0\.0\.0/8\?\)"),
    case("nic-named-lo", """
        name: t
        hosts:
          h:
            nics:
              eth0: {}
              lo: {mtu: 9000}   # <-
        """, "hosts.h.nics.lo", r"loopback"),
    case("interface-name-too-long", """
        name: t
        hosts:
          h:
            nics:
              enp0s31f6abcdefgh: {}   # <-
        """, "hosts.h.nics.enp0s31f6abcdefgh", r"at most 15 characters"),
    case("same-interface-in-two-links", """
        name: t
        hosts: {h1: {}, h2: {}, h3: {}}
        links:
          - endpoints: ["h1:eth0", h2]
          - endpoints: ["h1:eth0", h3]   # <-
        """, "links[1].endpoints[0]", r"interface eth0 of h1 is used twice"),
    # -- sysctls -------------------------------------------------------------------------------------
    case("unknown-sysctl", """
        name: t
        sysctls:
          net.ipv4.ip_forwad: 1   # <-
        """, "sysctls.net.ipv4.ip_forwad", r"not modelled.*did you mean 'net\.ipv4\.ip_forward'"),
    case("bad-sysctl-value", """
        name: t
        containers:
          a:
            sysctls:
              net.ipv4.ip_default_ttl: lots   # <-
        """, "containers.a.sysctls.net.ipv4.ip_default_ttl", r"expected an integer.*lots"),
    # -- types ---------------------------------------------------------------------------------------
    case("wrong-type-count", """
        name: t
        containers: {a: {}, b: {}}
        workloads:
          - app: udp
            from: a
            to: b
            port: 9
            count: many      # <-
        """, "workloads[0].count", r"integer.*'many'"),
    case("wrong-type-cpus", """
        name: t
        hosts:
          h:
            cpus: two        # <-
        """, "hosts.h.cpus", r"integer.*'two'"),
    case("wrong-type-container-networks", """
        name: t
        containers:
          a:
            networks: 5      # <-
        """, "containers.a.networks", r"list.*mapping|mapping.*list"),
    case("wrong-type-top-level-networks", """
        name: t
        networks: 5          # <-
        """, "networks", r"mapping"),
    case("wrong-type-driver-option-number", """
        name: t
        networks:
          front:
            options:
              com.docker.network.driver.mtu: 1500   # <-
        """, "networks.front.options.com.docker.network.driver.mtu", r"expected a string.*quote it: \"1500\""),
    case("wrong-type-network-list-item", """
        name: t
        containers:
          a:
            networks:
              - bridge
              - 5            # <-
        """, "containers.a.networks[1]", r"expected a string, got the number 5"),
    case("bad-name-characters", """
        name: my scenario    # <-
        """, "name", r"bad name 'my scenario'.*letters, digits"),
    case("wrong-type-hosts-list", """
        name: t
        hosts:               # <-
          - h1
          - h2
        """, "hosts", r"mapping"),
    # -- workloads -----------------------------------------------------------------------------------
    case("unknown-app", """
        name: t
        containers: {a: {}, b: {}}
        workloads:
          - from: a
            to: b
            app: tcp_blk     # <-
            port: 9
            count: 1
        """, "workloads[0].app", r"unknown app 'tcp_blk'.*udp, udp_rr"),
    case("missing-app", """
        name: t
        containers: {a: {}, b: {}}
        workloads:
          - {from: a, to: b, port: 9, count: 1}   # <-
        """, "workloads[0].app", r"required.*udp, udp_rr"),
    case("workload-from-nothing", """
        name: t
        containers: {a: {}, b: {}}
        workloads:
          - app: udp
            from: ghost      # <-
            to: b
            port: 9
            count: 1
        """, "workloads[0].from", r"unknown container or host 'ghost'"),
    case("workload-to-nothing", """
        name: t
        containers: {a: {}, b: {}}
        workloads:
          - app: udp
            from: a
            to: ghost        # <-
            port: 9
            count: 1
        """, "workloads[0].to", r"unknown container, host or address 'ghost'"),
    case("unreachable-from-none-network", """
        name: t
        containers:
          a: {networks: [none]}
          b: {}
        workloads:
          - app: udp
            from: a
            to: b            # <-
            port: 9
            count: 1
        """, "workloads[0].to", r"unreachable.*no route from a .*a has no interface but lo"),
    case("unreachable-bridge-across-hosts", """
        name: t
        hosts: {h1: {}, h2: {}}
        links:
          - endpoints: [h1, h2]
        networks:
          n1: {subnet: 10.1.0.0/24}
          n2: {subnet: 10.2.0.0/24}
        containers:
          a: {host: h1, networks: [n1]}
          b: {host: h2, networks: [n2]}
        workloads:
          - app: udp
            from: a
            to: b            # <-
            port: 9
            count: 1
        """, "workloads[0].to", r"unreachable.*no route from h1 to 10\.2\.0\.2.*b runs on host h2"),
    case("unreachable-same-bridge-name-across-hosts", """
        name: t
        hosts: {h1: {}, h2: {}}
        links:
          - endpoints: [h1, h2]
        networks:
          n: {}
        containers:
          a: {host: h1, networks: [n]}
          b: {host: h2, networks: [n]}
        workloads:
          - app: udp_rr
            from: a
            to: b            # <-
            port: 9
            count: 1
        """, "workloads[0].to",
         r"unreachable: b's address \S+ is also a's own address.*b runs on host h2 and a on host h1"),
    case("interval-and-rate", """
        name: t
        containers: {a: {}, b: {}}
        workloads:
          - app: udp
            from: a
            to: b
            port: 9
            count: 10
            interval: 1ms
            rate: 10mbit     # <-
        """, "workloads[0].rate", r"either interval or rate, not both"),
    case("same-port-served-twice", """
        name: t
        containers: {a: {}, b: {}, c: {}}
        workloads:
          - {app: udp, from: a, to: c, port: 9000, count: 1}
          - {app: udp_rr, from: b, to: c, port: 9000, count: 1}   # <-
        """, "workloads[1].port", r"port 9000/udp on c is already served by workloads\[0\]"),
    case("port-out-of-range", """
        name: t
        containers: {a: {}, b: {}}
        workloads:
          - app: udp
            from: a
            to: b
            port: 70000      # <-
            count: 1
        """, "workloads[0].port", r"65535"),
    # -- YAML ----------------------------------------------------------------------------------------
    case("yaml-bad-indentation", """
        name: t
        containers:
          a: {}
         b: {}               # <-
        """, None, r"YAML syntax error"),
    case("yaml-unclosed-bracket", """
        name: t
        containers:
          a: {networks: [front, back}   # <-
        """, None, r"YAML syntax error.*\]"),
    case("yaml-unclosed-bracket-at-end", """
        name: t
        containers:
          a:
            networks: [front,   # <-
        """, None, r"YAML syntax error.*(not closed|\])"),
    case("yaml-tab-indentation", "name: t\ncontainers:\n\ta: {}   # <-\n", None, r"YAML syntax error.*tab"),
    case("duplicate-key", """
        name: t
        containers:
          a: {}
          b: {}
          a: {}              # <-
        """, "containers.a", r"duplicate key 'a' \(first on line 3\)"),
    case("duplicate-top-level-key", """
        name: t
        description: one
        name: u              # <-
        """, "name", r"duplicate key 'name' \(first on line 1\)"),
    case("duplicate-key-in-flow-mapping", """
        name: t
        containers: {a: {}, b: {}}
        workloads:
          - {app: udp, from: a, to: b, port: 9, count: 1,
             port: 10}       # <-
        """, "workloads[0].port", r"duplicate key 'port' \(first on line 4\)"),
    case("empty-file", "", None, r"empty"),
    case("only-comments", "# nothing here\n", None, r"empty"),
    case("only-a-list", """
        - name: t
        - hosts: {}
        """, None, r"mapping.*got a list"),
    case("only-a-string", "hello\n", None, r"mapping.*got a string"),
]
