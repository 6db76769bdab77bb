package shop

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// thumbSizes are the thumbnails made of every avatar, thumbs/<id>/<size>.jpg.
var thumbSizes = []int{64, 128}

// SeedFiles writes the uploads of the customers that have an avatar under
// root: avatars/<id>/avatar.jpg and its thumbnails thumbs/<id>/64.jpg and
// thumbs/<id>/128.jpg, each holding the customer's Avatar marker; and
// avatars/default/avatar.jpg, the picture of nobody shown in place of a
// missing one. The files are JPEG-shaped (a JFIF header, the marker in a
// comment segment, filler), not pictures anyone could look at. Existing
// files are overwritten.
func SeedFiles(root string, cs []Customer) error {
	write := func(rel string, data []byte) error {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("seed files: %w", err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return fmt.Errorf("seed files: %w", err)
		}
		return nil
	}
	if err := write("avatars/default/avatar.jpg", jpeg("<default avatar>", 2048)); err != nil {
		return err
	}
	for _, c := range cs {
		if c.Avatar == "" {
			continue
		}
		id := strconv.FormatInt(c.ID, 10)
		if err := write("avatars/"+id+"/avatar.jpg", jpeg(c.Avatar, 4096)); err != nil {
			return err
		}
		for _, size := range thumbSizes {
			if err := write(fmt.Sprintf("thumbs/%s/%d.jpg", id, size), jpeg(c.Avatar+" thumbnail "+strconv.Itoa(size), size*4)); err != nil {
				return err
			}
		}
	}
	return nil
}

// jpeg returns size bytes or more shaped like a JPEG file: SOI, a JFIF
// APP0 segment, comment in a COM segment, filler derived from the
// comment, EOI.
func jpeg(comment string, size int) []byte {
	var b bytes.Buffer
	b.Write([]byte{0xFF, 0xD8})
	b.Write([]byte{0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00})
	n := len(comment) + 2
	b.Write([]byte{0xFF, 0xFE, byte(n >> 8), byte(n)})
	b.WriteString(comment)
	x := uint32(2166136261) // FNV-1a of the comment seeds the filler
	for i := 0; i < len(comment); i++ {
		x = (x ^ uint32(comment[i])) * 16777619
	}
	for b.Len() < size-2 {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		if c := byte(x); c != 0xFF { // no stray marker
			b.WriteByte(c)
		}
	}
	b.Write([]byte{0xFF, 0xD9})
	return b.Bytes()
}
