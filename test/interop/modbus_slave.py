#!/usr/bin/python3
"""An independent Modbus RTU slave (pymodbus 3.0, Debian python3-pymodbus)
for edge's interop tests: hardware/modbus drives it over a socat pty pair.

usage: /usr/bin/python3 modbus_slave.py PORT UNIT SPEC

SPEC is JSON: {"hr": [ENTRY...], "ir": [ENTRY...]} where an ENTRY is
{"addr": 16, "type": "uint16", "value": 5400} with type one of uint16,
int16, uint32, int32, float32, raw (a list of register values), and for the
32-bit types "order": "big" (high word first) or "little". Only the
registers listed exist: asking for any other is exception 2. Values are
encoded here with Python's struct, independently of the Go driver.

Addresses in SPEC and in dumps are wire (PDU) addresses. pymodbus keeps its
blocks one off (wire address a is block address a+1 unless zero_mode), so
the blocks are filled at a+1 and dumped through the context's getValues,
which applies the same shift the protocol path does.

Prints "ready" once the port is open. Commands on stdin, one per line:
  dump              one JSON line {"hr": {"16": 5400, ...}, "ir": {...}}
  set hr|ir ADDR V  change a register behind the master's back
  quit              exit (so does the end of stdin)
"""

import asyncio
import json
import os
import struct
import sys
import threading

from pymodbus.datastore import (
    ModbusServerContext,
    ModbusSlaveContext,
    ModbusSparseDataBlock,
)
from pymodbus.server import StartAsyncSerialServer
from pymodbus.transaction import ModbusRtuFramer

FORMATS = {"uint16": ">H", "int16": ">h", "uint32": ">I", "int32": ">i", "float32": ">f"}


def registers(entry):
    """The register values of one SPEC entry, in wire order."""
    kind = entry["type"]
    if kind == "raw":
        return list(entry["value"])
    data = struct.pack(FORMATS[kind], entry["value"])
    regs = [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]
    if len(regs) == 2 and entry.get("order", "big") == "little":
        regs.reverse()
    return regs


def block(entries):
    """A sparse block holding only the listed registers (at wire + 1)."""
    values = {}
    for entry in entries:
        for i, reg in enumerate(registers(entry)):
            values[entry["addr"] + i + 1] = reg
    return values


def commands(slave, spec_addrs):
    """Serve stdin commands (in a thread: the datastore is plain Python)."""
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "dump":
            out = {}
            for table, fc in (("hr", 3), ("ir", 4)):
                out[table] = {
                    str(a): slave.getValues(fc, a, 1)[0] for a in sorted(spec_addrs[table])
                }
            print(json.dumps(out), flush=True)
        elif words[0] == "set" and len(words) == 4:
            fc = 6 if words[1] == "hr" else 4
            if words[1] == "ir":
                slave.store["i"].setValues(int(words[2], 0) + 1, [int(words[3], 0)])
            else:
                slave.setValues(fc, int(words[2], 0), [int(words[3], 0)])
            print("ok", flush=True)
        elif words[0] == "quit":
            break
        else:
            print("error: unknown command", flush=True)
    sys.stdout.flush()
    os._exit(0)


async def main():
    port, unit, spec = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
    hr, ir = block(spec.get("hr", [])), block(spec.get("ir", []))
    slave = ModbusSlaveContext(
        di=ModbusSparseDataBlock({1: 0}),
        co=ModbusSparseDataBlock({1: 0}),
        hr=ModbusSparseDataBlock(hr),
        ir=ModbusSparseDataBlock(ir),
    )
    context = ModbusServerContext(slaves={unit: slave}, single=False)
    server = await StartAsyncSerialServer(
        context=context,
        framer=ModbusRtuFramer,
        port=port,
        baudrate=19200,
        bytesize=8,
        parity="N",
        stopbits=1,
        ignore_missing_slaves=True,
        defer_start=True,
    )
    await server.start()
    if server.transport is None:
        print(f"error: cannot open {port}", flush=True)
        os._exit(1)
    spec_addrs = {"hr": [a - 1 for a in hr], "ir": [a - 1 for a in ir]}
    print("ready", flush=True)
    threading.Thread(target=commands, args=(slave, spec_addrs), daemon=True).start()
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
