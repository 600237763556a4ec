// Package wire implements the Confluent Schema Registry wire format: a zero magic byte, the
// schema id as a 4-byte big-endian integer, then the Avro binary body.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// HeaderSize is the length of the magic byte plus schema id.
const HeaderSize = 5

// MagicByte opens every framed record.
const MagicByte byte = 0

var (
	// ErrTooShort means the record cannot even hold the 5-byte header.
	ErrTooShort = errors.New("wire: record shorter than the 5-byte header")
	// ErrBadMagic means the first byte is not the Confluent magic byte 0.
	ErrBadMagic = errors.New("wire: unknown magic byte")
	// ErrBadID means the schema id does not fit the registry's id range.
	ErrBadID = errors.New("wire: schema id out of range")
)

// AppendHeader appends the 5-byte header for schema id to dst.
func AppendHeader(dst []byte, id int) ([]byte, error) {
	if id < 0 || id > math.MaxInt32 {
		return dst, fmt.Errorf("%w: %d", ErrBadID, id)
	}
	dst = append(dst, MagicByte)
	return binary.BigEndian.AppendUint32(dst, uint32(id)), nil
}

// Split returns the schema id and the Avro body of a framed record. The body aliases b.
func Split(b []byte) (id int, body []byte, err error) {
	if len(b) < HeaderSize {
		return 0, nil, fmt.Errorf("%w (%d bytes)", ErrTooShort, len(b))
	}
	if b[0] != MagicByte {
		return 0, nil, fmt.Errorf("%w 0x%02x", ErrBadMagic, b[0])
	}
	u := binary.BigEndian.Uint32(b[1:HeaderSize])
	if u > math.MaxInt32 {
		return 0, nil, fmt.Errorf("%w: %d", ErrBadID, u)
	}
	return int(u), b[HeaderSize:], nil
}
