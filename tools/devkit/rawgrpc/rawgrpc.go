// Package rawgrpc calls a gRPC method with request bytes as they are, unchecked: the
// protobuf codec refuses to marshal what a hostile client could still send (invalid UTF-8
// in string fields, truncated or malformed messages). For abuse tests and fuzzing.
package rawgrpc

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
)

// codec passes bytes through; it takes the "proto" name so that the content type is the
// one a server expects.
type codec struct{}

func (codec) Marshal(v any) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("rawgrpc: marshal %T, want *[]byte", v)
	}
	return *b, nil
}

func (codec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawgrpc: unmarshal into %T, want *[]byte", v)
	}
	*b = append((*b)[:0], data...)
	return nil
}

func (codec) Name() string { return "proto" }

// Invoke calls method (e.g. "/emqx.exhook.v2.HookProvider/OnMessagePublish") with req as
// the request message and returns the response message's bytes.
func Invoke(ctx context.Context, cc grpc.ClientConnInterface, method string, req []byte) ([]byte, error) {
	var resp []byte
	err := cc.Invoke(ctx, method, &req, &resp, grpc.ForceCodec(codec{}))
	return resp, err
}
