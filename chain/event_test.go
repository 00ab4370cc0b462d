package chain

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/ccos-project/ccos/rtfs"
)

func sampleEvent() *Event {
	return &Event{
		Seq:     3,
		Parent:  Hash{1, 2, 3},
		Time:    time.Date(2026, 11, 22, 18, 0, 0, 123456789, time.UTC),
		Origin:  OriginGuest,
		Type:    TypeCapabilityCall,
		ID:      "e-1",
		Session: "s-1",
		Plan:    "p-1",
		Intent:  "i-1",
		Step:    "step-2",
		Payload: rtfs.MapOf(rtfs.Keyword{Name: "cap"}, rtfs.String{V: "http.get"}, rtfs.Keyword{Name: "n"}, rtfs.Int{V: 42}),
	}
}

func mustEncode(t testing.TB, e *Event) []byte {
	t.Helper()
	b, err := Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		edit func(e *Event)
	}{
		{"full", func(*Event) {}},
		{"nil payload", func(e *Event) { e.Payload = nil }},
		{"empty ids", func(e *Event) { e.Session, e.Plan, e.Intent, e.Step = "", "", "", "" }},
		{"host origin", func(e *Event) { e.Origin = OriginHost }},
		{"unicode", func(e *Event) { e.Step = "schritt-ä"; e.Payload = rtfs.String{V: "ünïcode\n\"q\""} }},
		{"before epoch", func(e *Event) { e.Time = time.Date(1960, 1, 1, 0, 0, 0, 1, time.UTC) }},
		{"nested payload", func(e *Event) {
			e.Payload = rtfs.NewVector(rtfs.NewList(rtfs.Symbol{Name: "f"}, rtfs.Float{V: 1.5}), rtfs.Nil{}, rtfs.Bool{V: true})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := sampleEvent()
			tc.edit(e)
			b := mustEncode(t, e)
			d, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if b2 := mustEncode(t, d); !bytes.Equal(b, b2) {
				t.Fatalf("re-encoding differs")
			}
			if d.Seq != e.Seq || d.Parent != e.Parent || !d.Time.Equal(e.Time) || d.Origin != e.Origin || d.Type != e.Type ||
				d.ID != e.ID || d.Session != e.Session || d.Plan != e.Plan || d.Intent != e.Intent || d.Step != e.Step {
				t.Fatalf("decoded %+v, want %+v", d, e)
			}
			want := e.Payload
			if want == nil {
				want = rtfs.Nil{}
			}
			if !rtfs.Equal(d.Payload, want) {
				t.Fatalf("payload %s, want %s", rtfs.Print(d.Payload), rtfs.Print(want))
			}
		})
	}
}

// TestEncodingLayout pins the byte layout the package comment specifies.
func TestEncodingLayout(t *testing.T) {
	e := &Event{Seq: 1, Time: time.Unix(0, 2).UTC(), Origin: OriginHost, Type: TypeCheckpoint, ID: "x", Payload: rtfs.Int{V: 7}}
	var want []byte
	want = append(want, "CCEV\x01"...)
	want = binary.BigEndian.AppendUint64(want, 1)
	want = binary.BigEndian.AppendUint64(want, 2)
	want = append(want, 1)
	want = append(want, make([]byte, 32)...)
	for _, s := range []string{"checkpoint", "x", "", "", "", "", "7"} {
		want = binary.BigEndian.AppendUint32(want, uint32(len(s)))
		want = append(want, s...)
	}
	if got := mustEncode(t, e); !bytes.Equal(got, want) {
		t.Fatalf("encoding\n got %q\nwant %q", got, want)
	}
}

func TestHashCoversEveryField(t *testing.T) {
	base := mustEncode(t, sampleEvent())
	edits := map[string]func(e *Event){
		"seq":     func(e *Event) { e.Seq++ },
		"parent":  func(e *Event) { e.Parent[31] ^= 1 },
		"time":    func(e *Event) { e.Time = e.Time.Add(time.Nanosecond) },
		"origin":  func(e *Event) { e.Origin = OriginHost },
		"type":    func(e *Event) { e.Type = TypeCapabilityResult },
		"id":      func(e *Event) { e.ID = "e-2" },
		"session": func(e *Event) { e.Session = "s-2" },
		"plan":    func(e *Event) { e.Plan = "p-2" },
		"intent":  func(e *Event) { e.Intent = "i-2" },
		"step":    func(e *Event) { e.Step = "step-3" },
		"payload": func(e *Event) { e.Payload = rtfs.Int{V: 43} },
		// Moving a byte between adjacent fields must change the hash too.
		"boundary": func(e *Event) { e.Session, e.Plan = "s-1p", "-1" },
	}
	for name, edit := range edits {
		e := sampleEvent()
		edit(e)
		if HashOf(mustEncode(t, e)) == HashOf(base) {
			t.Errorf("%s: hash unchanged", name)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	good := mustEncode(t, sampleEvent())
	// Offsets of the fields in good.
	const originOff, typeOff = 21, fixedLen
	withType := func(typ string) []byte {
		e := sampleEvent()
		b := mustEncode(t, e)
		rest := b[typeOff+4+len(e.Type):]
		out := append([]byte(nil), b[:typeOff]...)
		out = binary.BigEndian.AppendUint32(out, uint32(len(typ)))
		out = append(out, typ...)
		return append(out, rest...)
	}
	withPayload := func(p string) []byte {
		e := sampleEvent()
		e.Payload = nil
		b := mustEncode(t, e)
		out := b[:len(b)-4-3]
		out = binary.BigEndian.AppendUint32(out, uint32(len(p)))
		return append(out, p...)
	}
	set := func(i int, c byte) []byte { b := append([]byte(nil), good...); b[i] = c; return b }
	tests := []struct {
		name  string
		in    []byte
		want  error
		field string
	}{
		{"empty", nil, ErrTruncated, "magic"},
		{"magic", set(0, 'X'), ErrMagic, "magic"},
		{"short header", good[:20], ErrTruncated, "header"},
		{"version", set(4, 2), ErrVersion, "version"},
		{"origin 0", set(originOff, 0), ErrOrigin, "origin"},
		{"origin 3", set(originOff, 3), ErrOrigin, "origin"},
		{"unknown type", withType("plan.exploded"), ErrUnknownType, "type"},
		{"type control char", withType("plan.\x00"), ErrInvalidText, "type"},
		{"type too long", withType(string(bytes.Repeat([]byte("a"), 65))), ErrFieldTooLong, "type"},
		{"truncated payload", good[:len(good)-1], ErrTruncated, "payload"},
		{"truncated length", good[:fixedLen+2], ErrTruncated, "type"},
		{"trailing", append(append([]byte(nil), good...), 0), ErrTrailingData, "payload"},
		{"payload two forms", withPayload("1 2"), ErrPayloadSyntax, "payload"},
		{"payload empty", withPayload(""), ErrPayloadSyntax, "payload"},
		{"payload comment", withPayload("1 ;c"), ErrPayloadSyntax, "payload"},
		{"payload unreadable", withPayload("(1"), ErrPayloadSyntax, "payload"},
		{"payload not canonical", withPayload("( 1 )"), ErrPayloadNotCanonical, "payload"},
		{"payload hex", withPayload("0xFF"), ErrPayloadNotCanonical, "payload"},
		{"payload bad utf8", withPayload("\"\xff\""), ErrInvalidText, "payload"},
		{"too large", make([]byte, MaxEventSize+1), ErrEventTooLarge, "event"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode: %v, want %v", err, tc.want)
			}
			var de *DecodeError
			if !errors.As(err, &de) || de.Field != tc.field {
				t.Fatalf("error %v: field %q, want %q", err, de.Field, tc.field)
			}
		})
	}
	// An empty id is named.
	e := sampleEvent()
	e.ID = ""
	if _, err := Encode(e); !errors.Is(err, ErrEmptyID) {
		t.Fatalf("Encode with empty id: %v", err)
	}
}

func TestEncodeRejects(t *testing.T) {
	tests := []struct {
		name string
		edit func(e *Event)
		want error
	}{
		{"unknown type", func(e *Event) { e.Type = "nope" }, ErrUnknownType},
		{"zero origin", func(e *Event) { e.Origin = 0 }, ErrOrigin},
		{"long id", func(e *Event) { e.Step = string(bytes.Repeat([]byte("s"), MaxIDLen+1)) }, ErrFieldTooLong},
		{"newline in id", func(e *Event) { e.Plan = "a\nb" }, ErrInvalidText},
		{"huge payload", func(e *Event) { e.Payload = rtfs.String{V: string(make([]byte, MaxPayload))} }, ErrFieldTooLong},
	}
	for _, tc := range tests {
		e := sampleEvent()
		tc.edit(e)
		if _, err := Encode(e); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func FuzzDecodeEvent(f *testing.F) {
	f.Add(mustEncode(f, sampleEvent()))
	e := sampleEvent()
	e.Payload = rtfs.NewList(rtfs.Symbol{Name: "quote"}, rtfs.Symbol{Name: "x"})
	f.Add(mustEncode(f, e))
	f.Add([]byte("CCEV\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Decode(b)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a *DecodeError", err)
			}
			return
		}
		// Whatever decodes re-encodes to the same bytes: the encoding is
		// canonical.
		b2, err := Encode(e)
		if err != nil {
			t.Fatalf("decoded event does not encode: %v", err)
		}
		if !bytes.Equal(b, b2) {
			t.Fatalf("re-encoding differs:\n%q\n%q", b, b2)
		}
	})
}
