"""The DMLC_* variables of an MXNet parameter-server cluster: what they are, and what ps-lite can take.

MXNet's kvstore (ps-lite) reads its cluster from the environment, and trusts
it: a missing variable is a C++ abort, a missing port a segmentation fault,
and any DMLC_ROLE but "worker" turns `import mxnet` itself into a server or
scheduler. `problem(environ)` checks them all together before MXNet sees them.
No mxnet here: linreg.compat calls it before mxnet is imported.
"""

import ipaddress
import re
import socket

ROLES = ("scheduler", "server", "worker")
LOOPBACK = "127.0.0.1"
PORT = 9091  # the port of MXNet's own examples
# ps-lite numbers its nodes 8 + 2k in a C int and opens a socket to each: far
# beyond any cluster this example runs, and far below where either breaks.
MAX_PROCESSES = 1024
REQUIRED = ("DMLC_ROLE", "DMLC_PS_ROOT_URI", "DMLC_PS_ROOT_PORT", "DMLC_NUM_WORKER", "DMLC_NUM_SERVER")
# How long a process waits for its cluster to join, and for a member's heartbeat, before it
# gives up (linreg.member); variables, so that every process of a cluster, launched or started
# from a recipe, reads the same ones.
WAIT_VARIABLE, WAIT = "LINREG_CLUSTER_WAIT", 180.0
LOST_VARIABLE, LOST_AFTER = "LINREG_LOST_AFTER", 10
MIN_LOST_AFTER = 3  # heartbeats come each second, counted in whole seconds: less would lose a busy member
HOW = "python -m linreg.recipe prints a process's variables; python -m linreg.launch sets them on one host"


def cluster_env(role, num_workers, num_servers, port=PORT, scheduler=LOOPBACK, host=LOOPBACK, interface="lo",
                node_port=None):
    """The DMLC_* variables ps-lite reads, for one process of the cluster (and PORT, the port
    a server or worker listens on, if node_port is given; else ps-lite picks one)."""
    return {
        "DMLC_ROLE": role,
        "DMLC_PS_ROOT_URI": scheduler,
        "DMLC_PS_ROOT_PORT": str(port),
        "DMLC_NODE_HOST": host,
        "DMLC_INTERFACE": interface,
        "DMLC_NUM_SERVER": str(num_servers),
        "DMLC_NUM_WORKER": str(num_workers),
    } | ({"PORT": str(node_port)} if node_port else {})


def ipv4_addresses():
    """{interface: [its IPv4 addresses]} of this machine (getifaddrs(3)); an interface without one is absent."""
    import ctypes
    import ctypes.util

    class Sockaddr(ctypes.Structure):
        _fields_ = [("family", ctypes.c_ushort), ("port", ctypes.c_ushort), ("addr", ctypes.c_ubyte * 4)]

    class Ifaddrs(ctypes.Structure):
        pass
    Ifaddrs._fields_ = [("next", ctypes.POINTER(Ifaddrs)), ("name", ctypes.c_char_p), ("flags", ctypes.c_uint),
                        ("addr", ctypes.POINTER(Sockaddr))]
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    head = ctypes.POINTER(Ifaddrs)()
    if libc.getifaddrs(ctypes.byref(head)) != 0:
        return {}
    found = {}
    try:
        entry = head
        while entry:
            item = entry.contents
            if item.addr and item.addr.contents.family == socket.AF_INET:
                found.setdefault(item.name.decode(errors="replace"), []).append(
                    socket.inet_ntoa(bytes(item.addr.contents.addr)))
            entry = item.next
    finally:
        libc.freeifaddrs(head)
    return found


def reach_problem(scheduler, host):
    """Why the other hosts could not reach this one, or it the scheduler, from the addresses alone; or None."""
    for name, address in (("--scheduler", scheduler), ("--host", host)):
        if ipaddress.IPv4Address(address).is_unspecified:
            return f"{name} {address} is no address another process can reach: give the host's own address"
    if ipaddress.IPv4Address(host).is_loopback != ipaddress.IPv4Address(scheduler).is_loopback:
        return (f"--host {host} and --scheduler {scheduler}: a loopback address is reached from its own host "
                "alone, so both are loopback (one host) or neither is")
    return None


def check_here(host, interface):
    """Raise ValueError unless interface exists here and host is one of its IPv4 addresses."""
    try:
        socket.if_nametoindex(interface)
    except (OSError, ValueError):  # ValueError: a NUL in the name
        raise ValueError(f"no interface {interface!r} on this machine") from None
    addresses = ipv4_addresses()
    if interface not in addresses:
        raise ValueError(f"the interface {interface} has no IPv4 address, and ps-lite takes only IPv4")
    if host not in addresses[interface]:
        elsewhere = [name for name, found in addresses.items() if host in found]
        raise ValueError(f"{host} is not an address of {interface} ({', '.join(addresses[interface])})"
                         + (f"; it is {elsewhere[0]}'s" if elsewhere else ", nor of this machine"))


# What a cluster takes, for the flags of linreg.launch and linreg.recipe and the variables alike.

def valid_count(n):
    """A number of workers or servers ps-lite takes."""
    return 1 <= n <= MAX_PROCESSES


def valid_port(port):
    return 0 < port < 65536


def valid_address(text):
    """An IPv4 address, as ps-lite takes a host."""
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _address(value):
    return None if valid_address(value) else "an IPv4 address such as 10.0.0.1"


def _whole(value):
    """value as C's atoi reads decimal digits (leading zeros allowed), if it is only digits and not huge; else None."""
    digits = value.lstrip("0")
    return int(digits or "0") if re.fullmatch(r"[0-9]+", value) and len(digits) <= 6 else None


def _count(value):
    n = _whole(value)
    return None if n is not None and valid_count(n) else f"a whole number from 1 to {MAX_PROCESSES}"


def _port(value):
    port = _whole(value)
    return None if port is not None and valid_port(port) else "a port from 1 to 65535"


def _interface(value):
    try:
        socket.if_nametoindex(value)
    except (OSError, ValueError):
        return "an interface of this machine (ip link lists them)"
    if value not in ipv4_addresses():
        return "an interface with an IPv4 address (ps-lite takes only IPv4; ip -4 addr lists them)"
    return None


def _node_host(value):
    if not valid_address(value) or ipaddress.IPv4Address(value).is_unspecified:
        return "this host's IPv4 address, as the other hosts reach it"
    return None


def _wait(value):
    try:
        seconds = float(value)
    except ValueError:
        seconds = None
    return None if seconds is not None and 0 < seconds < float("inf") else "a positive number of seconds"


def _lost_after(value):
    seconds = _whole(value)
    return (None if seconds is not None and seconds >= MIN_LOST_AFTER
            else f"a whole number of seconds from {MIN_LOST_AFTER}")


CHECKS = {  # variable: what it must be, as a function of its value (None: fine)
    "DMLC_ROLE": lambda v: None if v in ROLES else "scheduler, server or worker",
    "DMLC_PS_ROOT_URI": _address,
    "DMLC_PS_ROOT_PORT": _port,
    "DMLC_NUM_WORKER": _count,
    "DMLC_NUM_SERVER": _count,
    "DMLC_NODE_HOST": _node_host,  # optional
    "DMLC_INTERFACE": _interface,  # optional
    "PORT": _port,  # optional: the port ps-lite binds for a server or worker (linreg.recipe --node-port)
    WAIT_VARIABLE: _wait,  # optional, as the next
    LOST_VARIABLE: _lost_after,
}


def cluster_wait(environ):
    """Seconds a process waits for its cluster to join (LINREG_CLUSTER_WAIT, checked by problem)."""
    return float(environ.get(WAIT_VARIABLE, WAIT))


def lost_after(environ):
    """Seconds without a heartbeat after which a member is lost (LINREG_LOST_AFTER, checked by problem)."""
    return _whole(environ[LOST_VARIABLE]) if LOST_VARIABLE in environ else LOST_AFTER


def port_problem(environ):
    """One line if the port this process would listen on is taken here, else None.

    ps-lite's scheduler aborts on a taken DMLC_PS_ROOT_PORT ("bind failed");
    a server or worker told a PORT that is taken silently listens on a
    random one instead, outside a fence made for PORT. Checked as ZMQ binds
    (SO_REUSEADDR): a port in TIME_WAIT is free to it.
    """
    role = environ["DMLC_ROLE"]
    if role == "scheduler":
        name, host = "DMLC_PS_ROOT_PORT", environ["DMLC_PS_ROOT_URI"]
    elif "PORT" in environ:
        name, host = "PORT", environ.get("DMLC_NODE_HOST", "0.0.0.0")
    else:
        return None
    if error := bind_error(host, _whole(environ[name])):
        return (f"{name}={environ[name]} cannot be listened on at {host} by the {role}: {error.strerror} "
                "(another process has it? choose another port)")
    return None


def bind_error(host, port, family=socket.AF_INET):
    """The OSError binding host:port gives, as ZMQ binds (SO_REUSEADDR: TIME_WAIT is free), or None."""
    with socket.socket(family) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            return e
    return None


def problem(environ):
    """One line on the first DMLC_* variable ps-lite could not take, or None if it can take them all."""
    for name in REQUIRED:
        if name not in environ:
            return f"{name} is not set: a cluster process needs {', '.join(REQUIRED)} ({HOW})"
    for name, check in CHECKS.items():
        if name in environ:
            expected = check(environ[name])
            if expected:
                how = "see docs/cluster.md, Waits and lost members" if name in (WAIT_VARIABLE, LOST_VARIABLE) else HOW
                return f"{name}={environ[name]!r} is not {expected} ({how})"
    return None
