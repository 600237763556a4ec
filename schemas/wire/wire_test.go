package wire

import (
	"bytes"
	"errors"
	"testing"
)

func TestAppendHeaderAndSplit(t *testing.T) {
	tests := []struct {
		name string
		id   int
		body []byte
		want []byte
	}{
		{"small id", 1, []byte{0x02, 0x61}, []byte{0, 0, 0, 0, 1, 0x02, 0x61}},
		{"big-endian id", 0x01020304, nil, []byte{0, 1, 2, 3, 4}},
		{"max id", 0x7fffffff, []byte{9}, []byte{0, 0x7f, 0xff, 0xff, 0xff, 9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendHeader(nil, tt.id)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, tt.body...)
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("framed = %x, want %x", got, tt.want)
			}
			id, body, err := Split(got)
			if err != nil {
				t.Fatal(err)
			}
			if id != tt.id || !bytes.Equal(body, tt.body) {
				t.Fatalf("Split = %d %x, want %d %x", id, body, tt.id, tt.body)
			}
		})
	}
}

func TestSplitErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrTooShort},
		{"four bytes", []byte{0, 0, 0, 1}, ErrTooShort},
		{"json not avro", []byte(`{"a":1}`), ErrBadMagic},
		{"magic 1", []byte{1, 0, 0, 0, 1}, ErrBadMagic},
		{"negative id", []byte{0, 0x80, 0, 0, 0}, ErrBadID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := Split(tt.in); !errors.Is(err, tt.want) {
				t.Fatalf("Split(%x) error = %v, want %v", tt.in, err, tt.want)
			}
		})
	}
	if _, err := AppendHeader(nil, -1); !errors.Is(err, ErrBadID) {
		t.Fatalf("AppendHeader(-1) error = %v, want ErrBadID", err)
	}
}

func FuzzSplit(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 7, 2, 'a'})
	f.Add([]byte{})
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		id, body, err := Split(b)
		if err != nil {
			return
		}
		again, err := AppendHeader(nil, id)
		if err != nil {
			t.Fatalf("id %d from Split does not re-frame: %v", id, err)
		}
		again = append(again, body...)
		if !bytes.Equal(again, b) {
			t.Fatalf("re-framed %x != input %x", again, b)
		}
	})
}
