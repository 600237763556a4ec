#!/usr/bin/env python3
"""Baseline EMQX ExHook -> Kafka bridge (grpcio + kafka-python), for benchmarks only.

A reconstruction of the typical Python bridge the platform replaced (see README.md next to
this file): it implements emqx.exhook.v2.HookProvider, registers message.publish for the
configured topic filters and writes every published message to one Kafka topic as a JSON
envelope {id, clientid, topic, qos, payload (base64), timestamp, node}, keyed by client id,
acks=all. It always replies IGNORE, so EMQX delivers the message unchanged.

Runs in the virtual environment install-deps.sh builds (requirements.txt: grpcio 1.51.1,
kafka-python 2.0.2, protobuf 4.21.12), plus protoc (protobuf-compiler): the message classes
are generated at startup from the repository's exhook.proto with `protoc --python_out` into a
cache directory; no grpc_python_plugin is needed because the service is registered with a
generic handler built from the proto's service descriptor.

Protocol with a supervising process (tools/devkit/cmd/compare): once Kafka metadata has been
fetched and the gRPC port is bound it prints `READY <host:port>` on stdout; on SIGTERM/SIGINT
it stops the gRPC server with a grace period, flushes and closes the producer, prints
`STATS published=N delivered=N rejected=N lost=N` on stdout and exits 0, or 1 if records EMQX
had been answered OK for were lost (async delivery failed, or the flush timed out). Logs go to
stderr.
"""

import argparse
import base64
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from concurrent import futures

import grpc
from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError

log = logging.getLogger("exhook-bridge")

SERVICE = "emqx.exhook.v2.HookProvider"
DEFAULT_PROTO = os.path.normpath(os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto", "emqx", "exhook", "v2", "exhook.proto"))


# --------------------------------------------------------------------------------------------
# Message classes generated at startup with protoc.
# --------------------------------------------------------------------------------------------

def load_proto(proto_path, cache_root):
    """Generates exhook_pb2.py with protoc (cached by proto content and protoc version) and
    imports it."""
    with open(proto_path, "rb") as f:
        source = f.read()
    try:
        protoc_version = subprocess.run(["protoc", "--version"], check=True, capture_output=True,
                                        text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as e:
        raise SystemExit("exhook-bridge: protoc is required (apt-get install protobuf-compiler): %s" % e)
    digest = hashlib.sha256(source + protoc_version.encode()).hexdigest()[:16]
    out_dir = os.path.join(cache_root, digest)
    module_path = os.path.join(out_dir, "exhook_pb2.py")
    if not os.path.exists(module_path):
        os.makedirs(cache_root, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix="gen-", dir=cache_root)
        subprocess.run(["protoc", "-I", os.path.dirname(proto_path), "--python_out=" + tmp,
                        os.path.basename(proto_path)], check=True)
        try:
            os.rename(tmp, out_dir)  # atomic; another process may have won the race
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    spec = importlib.util.spec_from_file_location("exhook_pb2", module_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------------------------
# The HookProvider.
# --------------------------------------------------------------------------------------------

class Counters:
    def __init__(self):
        self._lock = threading.Lock()
        self.published = 0  # hook calls answered OK (record queued, or acked in sync mode)
        self.delivered = 0  # records Kafka acknowledged (async: reported by the callback)
        self.rejected = 0   # hook calls answered with a gRPC error: EMQX knows
        self.lost = 0       # async: answered OK, then Kafka delivery failed: nobody knows

    def add(self, name):
        """Increments a counter and returns its new value."""
        with self._lock:
            n = getattr(self, name) + 1
            setattr(self, name, n)
            return n

    def snapshot(self):
        with self._lock:
            return self.published, self.delivered, self.rejected, self.lost


class Bridge:
    def __init__(self, pb2, producer, topic, filters, sync, sync_timeout):
        self.pb2 = pb2
        self.producer = producer
        self.topic = topic
        self.filters = filters
        self.sync = sync
        self.sync_timeout = sync_timeout
        self.counters = Counters()
        self._ignore = pb2.ValuedResponse(type=pb2.ValuedResponse.IGNORE)
        self._empty = pb2.EmptySuccess()

    # -- delivery reports (run on kafka-python's sender thread) --

    def _delivered(self, _metadata):
        self.counters.add("delivered")

    def _failed(self, exc):
        n = self.counters.add("lost")
        if n == 1 or n % 1000 == 0:  # rate-limited: a Kafka outage fails thousands
            log.error("kafka delivery failed after EMQX was answered (%d so far): %r", n, exc)

    # -- hooks --

    def on_provider_loaded(self, request, context):
        log.info("provider loaded by %s (EMQX %s); hooking message.publish for %s",
                 request.meta.node, request.broker.version, self.filters)
        return self.pb2.LoadedResponse(hooks=[self.pb2.HookSpec(name="message.publish", topics=self.filters)])

    def on_message_publish(self, request, context):
        msg = request.message
        clientid = getattr(msg, "from")  # `msg.from` is a SyntaxError: `from` is a keyword
        envelope = json.dumps({
            "id": msg.id,
            "clientid": clientid,
            "topic": msg.topic,
            "qos": msg.qos,
            "payload": base64.b64encode(msg.payload).decode("ascii"),
            "timestamp": msg.timestamp,
            "node": msg.node,
        }, separators=(",", ":")).encode("utf-8")
        try:
            # Blocks at most max_block_ms (metadata / buffer space), which is kept below EMQX's
            # request_timeout. Broker errors come back as an already-failed future.
            future = self.producer.send(self.topic, key=clientid.encode("utf-8"), value=envelope)
            if future.is_done and future.failed():
                raise future.exception
            if self.sync:
                future.get(timeout=self._sync_wait(context))
                self.counters.add("delivered")
            else:
                future.add_callback(self._delivered)
                future.add_errback(self._failed)
        except KafkaTimeoutError as e:
            self._reject(context, grpc.StatusCode.DEADLINE_EXCEEDED, e)
        except KafkaError as e:
            self._reject(context, grpc.StatusCode.UNAVAILABLE, e)
        except Exception as e:  # noqa: BLE001 - any other failure is still an error for EMQX
            self._reject(context, grpc.StatusCode.INTERNAL, e)
        self.counters.add("published")
        return self._ignore

    def _sync_wait(self, context):
        remaining = context.time_remaining()  # None without a deadline
        if remaining is None:
            return self.sync_timeout
        return max(0.001, min(self.sync_timeout, remaining - 0.05))

    def _reject(self, context, code, exc):
        n = self.counters.add("rejected")
        if n == 1 or n % 1000 == 0:
            log.error("message.publish answered with %s (%d so far): %r", code.name, n, exc)
        context.abort(code, "kafka produce failed: %r" % (exc,))  # raises; EMQX sees the error

    def trivial(self, response):
        def handler(_request, _context):
            return response
        return handler

    def generic_handler(self):
        """One handler per RPC of the service descriptor: the two real hooks, every other RPC
        answered with its trivial success (EmptySuccess, or IGNORE for ValuedResponse)."""
        pb2 = self.pb2
        service = pb2.DESCRIPTOR.services_by_name["HookProvider"]
        if service.full_name != SERVICE:
            raise SystemExit("exhook-bridge: proto describes %s, want %s" % (service.full_name, SERVICE))
        real = {"OnProviderLoaded": self.on_provider_loaded, "OnMessagePublish": self.on_message_publish}
        handlers = {}
        for method in service.methods:
            req_cls = getattr(pb2, method.input_type.name)
            resp_cls = getattr(pb2, method.output_type.name)
            if method.name in real:
                fn = real[method.name]
            elif resp_cls is pb2.ValuedResponse:
                fn = self.trivial(self._ignore)
            elif resp_cls is pb2.EmptySuccess:
                fn = self.trivial(self._empty)
            else:
                raise SystemExit("exhook-bridge: no handler for %s returning %s" % (method.name, resp_cls.__name__))
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                fn, request_deserializer=req_cls.FromString, response_serializer=resp_cls.SerializeToString)
        return grpc.method_handlers_generic_handler(SERVICE, handlers), len(handlers)


# --------------------------------------------------------------------------------------------
# Main.
# --------------------------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description="Baseline Python EMQX ExHook -> Kafka bridge (benchmarks only).")
    p.add_argument("--listen", default="127.0.0.1:9000", help="gRPC listen host:port (port 0: any free port)")
    p.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers, comma-separated")
    p.add_argument("--topic", default="iov.vehicle.raw", help="Kafka topic every message goes to")
    p.add_argument("--filter", action="append", dest="filters",
                   help="MQTT topic filter to hook message.publish for (repeatable; default '#')")
    p.add_argument("--workers", type=int, default=10, help="gRPC server thread pool size")
    p.add_argument("--sync", action="store_true",
                   help="answer the hook only after Kafka acknowledged the record (future.get(timeout))")
    p.add_argument("--sync-timeout", type=float, default=5.0,
                   help="sync mode: max seconds to wait for Kafka (also capped by the gRPC deadline)")
    p.add_argument("--linger-ms", type=int, default=5, help="kafka-python linger_ms")
    p.add_argument("--retries", type=int, default=5, help="kafka-python retries (its default 0 drops on any transient error)")
    p.add_argument("--max-block-ms", type=int, default=3000,
                   help="max ms send() may block for metadata/buffer space; keep below EMQX's request_timeout")
    p.add_argument("--api-version", default="2.5.0",
                   help="Kafka protocol version for kafka-python ('auto' probes the broker, which is fragile)")
    p.add_argument("--grace", type=float, default=20.0, help="seconds in-flight hook calls get on shutdown")
    p.add_argument("--flush-timeout", type=float, default=30.0, help="seconds to flush the producer on shutdown")
    p.add_argument("--proto", default=DEFAULT_PROTO, help="path to emqx/exhook/v2/exhook.proto")
    p.add_argument("--proto-cache", default=os.path.join(tempfile.gettempdir(), "iov-exhook-bridge-%d" % os.getuid()),
                   help="directory for the protoc-generated module")
    p.add_argument("--log-level", default="INFO")
    a = p.parse_args(argv)
    a.filters = a.filters or ["#"]
    if a.workers < 1:
        p.error("--workers must be >= 1")
    return a


def main(argv):
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)

    # Install the handlers first: Python's default SIGTERM action kills the process without
    # flushing what the producer has buffered (records EMQX was already told were fine).
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    pb2 = load_proto(args.proto, args.proto_cache)
    api_version = None if args.api_version == "auto" else tuple(int(x) for x in args.api_version.split("."))
    try:
        producer = KafkaProducer(
            bootstrap_servers=args.bootstrap.split(","),
            client_id="exhook-bridge",
            acks="all",
            retries=args.retries,
            # kafka-python 2.0.2 has no idempotent producer: with retries and more than one request
            # in flight a retried batch can land behind a later one and reorder a vehicle's messages.
            max_in_flight_requests_per_connection=1,
            linger_ms=args.linger_ms,
            max_block_ms=args.max_block_ms,
            api_version=api_version,
        )
        # Fail fast instead of serving hooks that can only fail: fetch the topic's metadata now.
        partitions = producer.partitions_for(args.topic)
    except KafkaError as e:
        raise SystemExit("exhook-bridge: Kafka %s, topic %s: %r" % (args.bootstrap, args.topic, e))
    if not partitions:
        raise SystemExit("exhook-bridge: Kafka topic %s has no partitions" % args.topic)

    bridge = Bridge(pb2, producer, args.topic, args.filters, args.sync, args.sync_timeout)
    handler, n_rpcs = bridge.generic_handler()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.workers, thread_name_prefix="hook"),
                         handlers=(handler,),
                         # grpcio sets SO_REUSEPORT by default: a second bridge would silently share
                         # the port with the first instead of failing.
                         options=[("grpc.so_reuseport", 0)])
    host = args.listen.rpartition(":")[0]
    try:
        bound = server.add_insecure_port(args.listen)
    except RuntimeError as e:  # newer grpcio raises, older returns 0
        raise SystemExit("exhook-bridge: cannot listen on %s: %s" % (args.listen, e))
    if bound == 0:
        raise SystemExit("exhook-bridge: cannot listen on %s" % args.listen)
    server.start()
    addr = "%s:%d" % (host, bound)
    log.info("serving %s (%d RPCs) on %s; kafka %s topic %s (%d partitions), acks=all, %s, %d workers",
             SERVICE, n_rpcs, addr, args.bootstrap, args.topic, len(partitions),
             "sync" if args.sync else "async", args.workers)
    print("READY %s" % addr, flush=True)

    while not stop.wait(1.0):
        pass

    log.info("stopping: %.0fs grace for in-flight hooks", args.grace)
    server.stop(args.grace).wait()
    code = 0
    try:
        producer.flush(timeout=args.flush_timeout)
    except KafkaTimeoutError:
        code = 1
    producer.close(timeout=5)
    published, delivered, rejected, lost = bridge.counters.snapshot()
    pending = published - delivered - lost  # answered OK, outcome unknown: still buffered
    if pending:
        log.error("flush did not complete within %.0fs: %d records EMQX was answered OK for are lost",
                  args.flush_timeout, pending)
        code = 1
    if lost:
        code = 1
    stats = "published=%d delivered=%d rejected=%d lost=%d" % (published, delivered, rejected, lost)
    log.info("stopped: %s", stats)
    print("STATS " + stats, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
