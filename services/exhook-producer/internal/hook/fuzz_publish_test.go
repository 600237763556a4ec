package hook

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	exhookv2 "github.com/iov-platform/iov/proto/emqx/exhook/v2"
)

// FuzzMessagePublishRequest hands arbitrary bytes, as a hostile client on the hook port could
// send them, to the gRPC method handler of OnMessagePublish with the server's own codec
// (the transport is left out: its goroutines make coverage, and so fuzzing, erratic).
// Whatever arrives, the hook does not panic; a request protobuf cannot decode is refused
// before the hook (the server answers INTERNAL) and writes nothing; a decoded one is answered
// IGNORE or INVALID_ARGUMENT, and a routed message it answered is in the producer: accepted,
// or as a dead letter or oversize note.
func FuzzMessagePublishRequest(f *testing.F) {
	for _, m := range []*exhookv2.Message{
		{Id: "1", From: "c1", Topic: "vehicles/V1/telemetry", Qos: 1, Payload: []byte(`{"speed":1}`), Timestamp: uint64(now)},
		{Id: "2", From: "c2", Topic: "raw/a/b", Payload: make([]byte, 20000), Headers: map[string]string{"username": "u", "peerhost": "10.0.0.1"}},
		{Id: "3", From: "c3", Topic: "vehicles/" + strings.Repeat("v", 3000) + "/telemetry", Qos: 7},
		{Topic: "elsewhere"},
		nil,
	} {
		b, err := proto.Marshal(&exhookv2.MessagePublishRequest{Message: m, Meta: &exhookv2.RequestMeta{Node: "emqx@n1"}})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x0a, 0x05, 0x22, 0x03, 0xff, 0xfe, 0xfd}) // message.topic of invalid UTF-8
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})       // a length beyond the input

	srv, prod, _ := sizeServer(f, 10000, nil)
	var handler grpc.MethodHandler
	for _, m := range exhookv2.HookProvider_ServiceDesc.Methods {
		if m.MethodName == "OnMessagePublish" {
			handler = m.Handler
		}
	}
	codec := encoding.GetCodecV2(grpcproto.Name) // what the server decodes requests with

	f.Fuzz(func(t *testing.T, data []byte) {
		var req exhookv2.MessagePublishRequest
		decodes := proto.Unmarshal(data, &req) == nil
		prod.mu.Lock()
		before := len(prod.recs)
		prod.mu.Unlock()

		decodeErr := errors.New("not decoded")
		out, err := handler(srv, context.Background(), func(v any) error {
			decodeErr = codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(data)}, v)
			return decodeErr
		}, nil)

		prod.mu.Lock()
		written := len(prod.recs) - before
		prod.mu.Unlock()
		if (decodeErr == nil) != decodes {
			t.Fatalf("gRPC's codec decoded: %v, protobuf: %v", decodeErr, decodes)
		}
		if !decodes {
			if err == nil || written != 0 { // the server answers it INTERNAL (TestHostileRequests)
				t.Fatalf("undecodable request: err %v, %d records written", err, written)
			}
			return
		}
		code := status.Code(err)
		routed := req.GetMessage() != nil && srv.o.Router.Match(req.GetMessage().GetTopic()) != nil
		switch code {
		case codes.OK:
			if v, ok := out.(*exhookv2.ValuedResponse); !ok || v.GetType() != exhookv2.ValuedResponse_IGNORE {
				t.Fatalf("reply %v, want IGNORE", out)
			}
			if routed && written != 1 {
				t.Fatalf("routed message answered OK with %d records written, want 1", written)
			}
			if !routed && written != 0 {
				t.Fatalf("unrouted message wrote %d records", written)
			}
		case codes.InvalidArgument:
			if routed && written != 1 {
				t.Fatalf("refused routed message (%v) left %d notes, want 1", err, written)
			}
		default:
			t.Fatalf("decodable request answered %v (%v)", code, err)
		}
	})
}
