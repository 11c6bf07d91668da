"""The scenario loader: line tracking, one located error per problem, and `did you mean`."""

from __future__ import annotations

import textwrap

import pytest

from simnet.scenario import ScenarioError, loads, source_of
from simnet.scenario.loader import SourceMap, fmt_path


def _text(s: str) -> str:
    return textwrap.dedent(s).lstrip("\n")


def _error(text: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as ei:
        loads(_text(text), "f.yaml")
    return ei.value


SCENARIO = _text("""
    name: lines
    hosts:
      h1:
        cpus: 4
        nic:
          rate: 10gbit
          mtu: 9000
      h2: {}
    links:
      - endpoints: [h1, h2]
        delay: 1ms
    networks:
      front: {subnet: 10.1.0.0/24,
              mtu: 1400}
    containers:
      a:
        host: h1
        networks:
          front:
            ipv4_address: 10.1.0.5
      b: {host: h1, networks: [front]}
    workloads:
      - app: udp
        from: a
        to: b
        port: 9
        count: 1
      - {app: udp_rr, from: b, to: a,
         port: 10, count: 1}
    """)


@pytest.fixture(scope="module")
def source() -> SourceMap:
    sc = loads(SCENARIO, "lines.yaml")
    src = source_of(sc)
    assert src is not None
    return src


def _line(text: str, snippet: str) -> int:
    """The line of ``text`` that holds ``snippet`` (which must occur on exactly one line)."""
    found = [i for i, ln in enumerate(text.splitlines(), start=1) if snippet in ln]
    assert len(found) == 1, (snippet, found)
    return found[0]


@pytest.mark.parametrize("path, snippet", [
    (("name",), "name: lines"),
    (("hosts",), "hosts:"),
    (("hosts", "h1"), "h1:"),
    (("hosts", "h1", "cpus"), "cpus: 4"),
    (("hosts", "h1", "nic", "rate"), "rate: 10gbit"),          # nested three deep
    (("hosts", "h1", "nic", "mtu"), "mtu: 9000"),
    (("hosts", "h2"), "h2: {}"),
    (("links", 0), "- endpoints"),                             # a list item: the line of its '-'
    (("links", 0, "endpoints"), "- endpoints"),
    (("links", 0, "endpoints", 1), "- endpoints"),             # flow sequence item
    (("links", 0, "delay"), "delay: 1ms"),
    (("networks", "front", "subnet"), "front: {subnet"),       # flow mapping
    (("networks", "front", "mtu"), "mtu: 1400}"),              # flow mapping continued on the next line
    (("containers", "a", "networks", "front", "ipv4_address"), "ipv4_address: 10.1.0.5"),
    (("containers", "b", "networks", 0), "b: {host: h1"),
    (("workloads", 0), "- app: udp"),
    (("workloads", 0, "app"), "- app: udp"),
    (("workloads", 0, "to"), "to: b"),
    (("workloads", 1), "- {app: udp_rr"),
    (("workloads", 1, "app"), "- {app: udp_rr"),
    (("workloads", 1, "port"), "port: 10, count: 1}"),         # second line of a flow mapping in a list
])
def test_line_of(source: SourceMap, path, snippet):
    assert source.file == "lines.yaml"
    assert source.line_of(path) == _line(SCENARIO, snippet)


def test_line_numbers_are_not_all_the_same(source: SourceMap):
    """Guards the table above: the snippets are on distinct lines, so a constant would fail."""
    assert source.line_of(("workloads", 1, "port")) - source.line_of(("workloads", 1)) == 1
    assert source.line_of(("hosts", "h1", "nic", "mtu")) == source.line_of(("hosts", "h1", "nic", "rate")) + 1


def test_line_of_unknown_path_falls_back_to_nearest_parent(source: SourceMap):
    # not written: the line of the nearest key that is
    assert source.line_of(("containers", "b", "hostname")) == _line(SCENARIO, "b: {host: h1")
    assert source.line_of(("workloads", 0, "payload")) == _line(SCENARIO, "- app: udp")
    assert source.line_of(("nothing", "here")) == 1


def test_fmt_path():
    assert fmt_path(("workloads", 3, "to")) == "workloads[3].to"
    assert fmt_path(("links", 0, "endpoints", 1)) == "links[0].endpoints[1]"
    assert fmt_path(("sysctls", "net.ipv4.ip_forward")) == "sysctls.net.ipv4.ip_forward"
    assert fmt_path(()) == ""


def test_error_str_is_one_line_with_file_line_and_path():
    e = _error("""
        name: t
        hosts:
          h:
            cpus: 0
        """)
    assert (e.file, e.line, e.path) == ("f.yaml", 4, ("hosts", "h", "cpus"))
    assert str(e) == "f.yaml:4: hosts.h.cpus: must be at least 1, got 0"
    assert "\n" not in str(e)


# -- did you mean ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, path, line, suggestion", [
    ("""
     name: t
     networks:
       front:
         drvier: bridge
     """, ("networks", "front", "drvier"), 4, "driver"),
    ("""
     name: t
     contaners: {}
     """, ("contaners",), 2, "containers"),
    ("""
     name: t
     containers: {a: {}, b: {}}
     workloads:
       - app: udp
         from: a
         to: b
         count: 1
         prot: 9
     """, ("workloads", 0, "prot"), 8, "port"),     # not 'port: required key is missing'
    ("""
     name: t
     hosts:
       h:
         nic: {rtae: 1gbit}
     """, ("hosts", "h", "nic", "rtae"), 4, "rate"),
    ("""
     name: t
     containers:
       a:
         networks:
           bridge: {ipv4_adress: 172.17.0.9}
     """, ("containers", "a", "networks", "bridge", "ipv4_adress"), 5, "ipv4_address"),
    ("""
     name: t
     containers: {a: {}, b: {}}
     workloads:
       - {app: udp_rr, from: a, to: b, port: 9, count: 1,
          reqeust: 100}
     """, ("workloads", 0, "reqeust"), 5, "request"),   # the udp_rr model, not the udp one
], ids=["driver", "top-level", "workload-block", "nic-flow", "attach", "udp_rr-flow-continued"])
def test_did_you_mean(text, path, line, suggestion):
    e = _error(text)
    assert e.path == path
    assert e.line == line
    assert e.message == f"unknown key (did you mean '{suggestion}'?)"


def test_unknown_key_without_close_match_lists_the_keys():
    e = _error("""
        name: t
        run:
          colour: blue
        """)
    assert e.path == ("run", "colour")
    assert e.line == 3
    assert e.message == "unknown key (expected one of: until, engine, sample)"


def test_renamed_key_names_the_new_one():
    e = _error("""
        name: t
        services:
          a: {}
        """)
    assert (e.path, e.line) == (("services",), 2)
    assert e.message == "unknown key (renamed: use containers)"


def test_unknown_app_suggests_the_close_one():
    e = _error("""
        name: t
        containers: {a: {}, b: {}}
        workloads:
          - from: a
            to: b
            app: udp-rr
        """)
    assert (e.path, e.line) == (("workloads", 0, "app"), 6)
    assert "did you mean 'udp_rr'?" in e.message


def test_unknown_sysctl_suggests_the_close_one():
    e = _error("""
        name: t
        hosts:
          h:
            sysctls:
              net.core.wmem_defualt: 1000
        """)
    assert (e.path, e.line) == (("hosts", "h", "sysctls", "net.core.wmem_defualt"), 5)
    assert "did you mean 'net.core.wmem_default'?" in e.message


# -- union members and types -------------------------------------------------------------------------

def test_error_in_mapping_form_of_networks_is_not_reported_as_not_a_list():
    e = _error("""
        name: t
        networks: {front: {subnet: 10.1.0.0/24}}
        containers:
          a:
            networks:
              front:
                ipv4_address: 10.1.0.999
        """)
    assert (e.path, e.line) == (("containers", "a", "networks", "front", "ipv4_address"), 7)
    assert "bad IPv4 address '10.1.0.999'" in e.message


def test_value_fitting_no_union_member_says_what_fits():
    e = _error("""
        name: t
        containers:
          a: {networks: 5}
        """)
    assert (e.path, e.line) == (("containers", "a", "networks"), 3)
    assert e.message == "expected a list or a mapping, got 5"


def test_first_error_in_the_file_is_reported():
    # pydantic validates 'hosts' before 'workloads'; the file has the workload first
    e = _error("""
        name: t
        workloads:
          - {app: udp, from: a, to: b, port: 9, count: lots}
        hosts:
          h: {cpus: many}
        """)
    assert (e.path, e.line) == (("workloads", 0, "count"), 3)
    assert e.message == "expected an integer, got 'lots'"


# -- YAML level ------------------------------------------------------------------------------------

def test_duplicate_key_reports_the_second():
    e = _error("""
        name: t
        hosts:
          h1: {}
          h2:
            cpus: 2
            cpus: 4
        """)
    assert (e.path, e.line) == (("hosts", "h2", "cpus"), 6)
    assert e.message == "duplicate key 'cpus' (first on line 5)"


def test_duplicate_key_in_flow_mapping():
    e = _error("""
        name: t
        hosts: {h1: {cpus: 2, cpus: 3}}
        """)
    assert (e.path, e.line) == (("hosts", "h1", "cpus"), 2)
    assert "duplicate key 'cpus'" in e.message


def test_unclosed_bracket_at_end_points_at_the_bracket():
    e = _error("""
        name: t
        containers:
          a:
            networks: [front,
        """)
    assert e.line == 4
    assert e.path == ()
    assert e.message == "YAML syntax error: '[' is never closed (expected ']')"


def test_unclosed_quote_points_at_the_quote():
    e = _error("""
        name: t
        description: 'open
        hosts: {h: {}}
        """)
    assert e.line == 2
    assert "never closed" in e.message


def test_syntax_error_line_is_inside_the_file():
    text = "name: t\nhosts: {h: {cpus: 2}\n"
    with pytest.raises(ScenarioError) as ei:
        loads(text, "f.yaml")
    assert 1 <= ei.value.line <= len(text.splitlines())
    assert ei.value.message.startswith("YAML syntax error")


def test_bad_indentation():
    e = _error("""
        name: t
        hosts:
          h1: {}
         h2: {}
        """)
    assert e.line == 4
    assert "bad indentation" in e.message


@pytest.mark.parametrize("text, message", [
    ("", "empty scenario (expected a mapping with at least 'name')"),
    ("# only a comment\n", "empty scenario (expected a mapping with at least 'name')"),
    ("- a\n- b\n", "a scenario is a mapping of keys (name:, hosts:, containers:, ...), got a list"),
    ("42\n", "a scenario is a mapping of keys (name:, hosts:, containers:, ...), got a number"),
])
def test_not_a_mapping(text, message):
    with pytest.raises(ScenarioError) as ei:
        loads(text, "f.yaml")
    assert str(ei.value) == f"f.yaml:1: {message}"


def test_non_string_key():
    e = _error("""
        name: t
        ~: 1
        """)
    assert e.line == 2
    assert e.message == "keys must be plain strings, got nothing (null)"


def test_check_errors_are_located_too():
    e = _error("""
        name: t
        networks:
          front: {subnet: 10.1.0.0/16}
          back: {subnet: 10.1.128.0/17}
        """)
    assert (e.file, e.line, e.path) == ("f.yaml", 4, ("networks", "back", "subnet"))
    assert "overlaps 10.1.0.0/16 (networks.front.subnet)" in e.message


def test_valid_scenario_loads():
    sc = loads(SCENARIO, "lines.yaml")
    assert sc.name == "lines"
    assert sc.hosts["h1"].nic.rate == 10e9
    assert sc.links[0].delay == pytest.approx(1e-3)
    assert [w.app for w in sc.workloads] == ["udp", "udp_rr"]
