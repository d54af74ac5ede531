package redisstore

import (
	"encoding/hex"
	"strings"
)

// A Twilio message SID ("SM" or "MM" and 32 hex digits, 34 bytes) is kept
// in a delivery record as "~", its two letters and its 16 bytes in Z85
// (ZeroMQ's base 85, which has neither '|' nor ','): 23 bytes. Any other
// provider id is kept as it is, with one more "~" in front when it starts
// with one.
const sidHexLen = 32

const z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"

var z85Value = func() (v [256]byte) {
	for i := range v {
		v[i] = 0xff
	}
	for i := range len(z85) {
		v[z85[i]] = byte(i)
	}
	return v
}()

// packProviderID appends id's packed form to buf.
func packProviderID(buf []byte, id string) []byte {
	if len(id) == 2+sidHexLen && id[0] >= 'A' && id[0] <= 'Z' && id[1] >= 'A' && id[1] <= 'Z' && isLowerHex(id[2:]) {
		var raw [sidHexLen / 2]byte
		if _, err := hex.Decode(raw[:], []byte(id[2:])); err == nil {
			buf = append(buf, '~', id[0], id[1])
			for i := 0; i < len(raw); i += 4 {
				v := uint32(raw[i])<<24 | uint32(raw[i+1])<<16 | uint32(raw[i+2])<<8 | uint32(raw[i+3])
				var c [5]byte
				for j := 4; j >= 0; j-- {
					c[j] = z85[v%85]
					v /= 85
				}
				buf = append(buf, c[:]...)
			}
			return buf
		}
	}
	if strings.HasPrefix(id, "~") {
		buf = append(buf, '~')
	}
	return append(buf, id...)
}

// unpackProviderID is the provider id whose packed form is p.
func unpackProviderID(p string) string {
	if rest, ok := strings.CutPrefix(p, "~"); ok && len(rest) == 2+20 && rest[0] != '~' {
		var raw [sidHexLen / 2]byte
		for i := 0; i < 4; i++ {
			var v uint64
			for _, c := range []byte(rest[2+5*i : 7+5*i]) {
				d := z85Value[c]
				if d == 0xff {
					return p
				}
				v = v*85 + uint64(d)
			}
			if v > 0xffffffff {
				return p
			}
			raw[4*i], raw[4*i+1], raw[4*i+2], raw[4*i+3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
		}
		return rest[:2] + hex.EncodeToString(raw[:])
	}
	if rest, ok := strings.CutPrefix(p, "~"); ok {
		return rest
	}
	return p
}

func isLowerHex(s string) bool {
	for i := range len(s) {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
