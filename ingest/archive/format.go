// Package archive is the ChunkedWriter: an io.Writer that cuts a stream of
// records (JSONL lines) into chunks, compresses each chunk on its own and
// frames it with lengths and CRC32C checksums, so any chunk can be read and
// verified without the others, and a damaged chunk costs only itself.
//
// # Format (version 1)
//
// All integers are big-endian. A file starts with a 16-byte header:
//
//	offset size field
//	0      8    magic "TRIADARC"
//	8      2    format version (1)
//	10     2    reserved (0)
//	12     4    CRC32C of bytes 0..11
//
// then chunks, each a 36-byte header followed by its payload:
//
//	offset size field
//	0      4    magic "TCHK"
//	4      1    codec: 0 none, 1 zstd, 2 s2
//	5      1    flags (0)
//	6      2    reserved (0)
//	8      4    records (newline-terminated lines) in the chunk
//	12     4    uncompressed payload length
//	16     4    compressed payload length
//	20     8    sequence number of the chunk in its file, from 0
//	28     4    CRC32C (Castagnoli) of the uncompressed payload
//	32     4    CRC32C of header bytes 0..31
//	36     n    compressed payload (n = compressed length)
//
// A chunk never splits a record (the writer cuts at a newline), so a chunk's
// payload is whole JSONL lines. A reader that finds a bad header searches
// forward for the next "TCHK" whose header checksum holds; a bad payload is
// skipped by its (checksummed) length.
package archive

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Format constants.
const (
	FileMagic     = "TRIADARC"
	ChunkMagic    = "TCHK"
	FormatVersion = 1
	fileHeaderLen = 16
	chunkHeadLen  = 36
	// MaxChunkBytes bounds a chunk's lengths; larger values in a header mean
	// the header is corrupt.
	MaxChunkBytes = 64 << 20
)

// Codec is a chunk's compression.
type Codec uint8

// Codecs.
const (
	CodecNone Codec = 0
	CodecZstd Codec = 1
	CodecS2   Codec = 2
)

func (c Codec) String() string {
	switch c {
	case CodecNone:
		return "none"
	case CodecZstd:
		return "zstd"
	case CodecS2:
		return "s2"
	}
	return fmt.Sprintf("codec(%d)", uint8(c))
}

// ParseCodec reads a codec name.
func ParseCodec(s string) (Codec, error) {
	for _, c := range []Codec{CodecNone, CodecZstd, CodecS2} {
		if c.String() == s {
			return c, nil
		}
	}
	return 0, fmt.Errorf("unknown codec %q (want none, zstd or s2)", s)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func checksum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

func fileHeader() []byte {
	b := make([]byte, fileHeaderLen)
	copy(b, FileMagic)
	binary.BigEndian.PutUint16(b[8:], FormatVersion)
	binary.BigEndian.PutUint32(b[12:], checksum(b[:12]))
	return b
}

func checkFileHeader(b []byte) error {
	switch {
	case len(b) < fileHeaderLen:
		return errors.New("file shorter than its header")
	case string(b[:8]) != FileMagic:
		return errors.New("not a triad archive (bad magic)")
	case binary.BigEndian.Uint32(b[12:]) != checksum(b[:12]):
		return errors.New("file header checksum mismatch")
	case binary.BigEndian.Uint16(b[8:]) != FormatVersion:
		return fmt.Errorf("format version %d not supported (this triad reads %d)", binary.BigEndian.Uint16(b[8:]), FormatVersion)
	}
	return nil
}

// chunkHeader is a decoded chunk header.
type chunkHeader struct {
	codec        Codec
	records      uint32
	rawLen       uint32
	compLen      uint32
	seq          uint64
	payloadCRC32 uint32
}

func (h chunkHeader) put(b []byte) {
	copy(b, ChunkMagic)
	b[4] = byte(h.codec)
	b[5], b[6], b[7] = 0, 0, 0
	binary.BigEndian.PutUint32(b[8:], h.records)
	binary.BigEndian.PutUint32(b[12:], h.rawLen)
	binary.BigEndian.PutUint32(b[16:], h.compLen)
	binary.BigEndian.PutUint64(b[20:], h.seq)
	binary.BigEndian.PutUint32(b[28:], h.payloadCRC32)
	binary.BigEndian.PutUint32(b[32:], checksum(b[:32]))
}

func parseChunkHeader(b []byte) (chunkHeader, error) {
	if string(b[:4]) != ChunkMagic {
		return chunkHeader{}, errors.New("bad chunk magic")
	}
	if binary.BigEndian.Uint32(b[32:]) != checksum(b[:32]) {
		return chunkHeader{}, errors.New("chunk header checksum mismatch")
	}
	h := chunkHeader{
		codec: Codec(b[4]), records: binary.BigEndian.Uint32(b[8:]), rawLen: binary.BigEndian.Uint32(b[12:]),
		compLen: binary.BigEndian.Uint32(b[16:]), seq: binary.BigEndian.Uint64(b[20:]), payloadCRC32: binary.BigEndian.Uint32(b[28:]),
	}
	if h.codec > CodecS2 {
		return h, fmt.Errorf("unknown codec %d", b[4])
	}
	if h.rawLen > MaxChunkBytes || h.compLen > MaxChunkBytes {
		return h, fmt.Errorf("chunk lengths %d/%d over the %d limit", h.rawLen, h.compLen, MaxChunkBytes)
	}
	return h, nil
}
