package audit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// MaxEntrySize is the largest event, in bytes, the log accepts.
const MaxEntrySize = 64 << 10

// recordHeader is the size of a record's header: length, then CRC-32C.
const recordHeader = 8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errTorn reports a record cut short: the end of a write that never
// completed (a crash mid-append), or a truncated file.
var errTorn = errors.New("record cut short")

// appendRecord appends data framed as a record to dst.
func appendRecord(dst, data []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(data)))
	dst = binary.BigEndian.AppendUint32(dst, crc32.Checksum(data, castagnoli))
	return append(dst, data...)
}

// readRecord decodes the record at the start of b and returns its data and
// the record's length in bytes. errTorn if b ends inside the record; another
// error if the record is corrupt. The data aliases b.
func readRecord(b []byte) (data []byte, n int, err error) {
	if len(b) < recordHeader {
		return nil, 0, errTorn
	}
	size := binary.BigEndian.Uint32(b)
	if size == 0 || size > MaxEntrySize {
		return nil, 0, fmt.Errorf("record length %d out of range 1..%d", size, MaxEntrySize)
	}
	n = recordHeader + int(size)
	if len(b) < n {
		return nil, 0, errTorn
	}
	data = b[recordHeader:n]
	if crc32.Checksum(data, castagnoli) != binary.BigEndian.Uint32(b[4:]) {
		return nil, 0, errors.New("record checksum mismatch")
	}
	return data, n, nil
}
