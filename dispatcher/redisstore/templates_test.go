package redisstore

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// TestTemplateStore: versions count per key, survive a delete, the
// history keeps the newest MaxTemplateHistory, and every write moves the
// hash's version.
func TestTemplateStore(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		if v, err := s.TemplatesVersion(ctx); err != nil || v != 0 {
			t.Fatalf("empty: version %d, %v", v, err)
		}
		k := dispatcher.TemplateKey{Locale: "de", Kind: "merchant", Channel: "sms", State: "resolved"}
		other := dispatcher.TemplateKey{Locale: "fr", Kind: "customer", Channel: "email", State: "identified", Industry: "telecom"}
		at := time.Date(2101, 1, 2, 3, 4, 5, 0, time.UTC)
		for i := 1; i <= dispatcher.MaxTemplateHistory+2; i++ {
			n, err := s.PutTemplate(ctx, k, dispatcher.TemplateVersion{Body: "v", By: "ops", At: at})
			if err != nil || n != i {
				t.Fatalf("put %d: %d, %v", i, n, err)
			}
		}
		if n, err := s.PutTemplate(ctx, k, dispatcher.TemplateVersion{Deleted: true, At: at}); err != nil || n != dispatcher.MaxTemplateHistory+3 {
			t.Fatalf("delete: %d, %v", n, err)
		}
		if n, err := s.PutTemplate(ctx, other, dispatcher.TemplateVersion{Title: "T", Body: "B", At: at}); err != nil || n != 1 {
			t.Fatalf("other key: %d, %v", n, err)
		}
		all, version, err := s.LoadTemplates(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := int64(dispatcher.MaxTemplateHistory + 4); version != want {
			t.Errorf("version %d, want %d", version, want)
		}
		got := map[dispatcher.TemplateKey]*dispatcher.StoredTemplate{}
		for _, st := range all {
			got[st.Key] = st
		}
		if st := got[k]; st == nil || st.Current != nil || len(st.History) != dispatcher.MaxTemplateHistory ||
			!st.History[0].Deleted || st.History[1].Version != dispatcher.MaxTemplateHistory+2 || !st.History[1].At.Equal(at) {
			t.Errorf("deleted key = %+v", st)
		}
		if st := got[other]; st == nil || st.Current == nil || st.Current.Title != "T" || st.Current.Version != 1 {
			t.Errorf("other key = %+v", st)
		}
	})
}

// TestRecordTemplateVersion: the version travels in the record's locale
// field, and a record without one reads 0.
func TestRecordTemplateVersion(t *testing.T) {
	t.Parallel()
	buf := encodeRecord(nil, 1000, record{status: dispatcher.StatusSent, locale: "de-CH", segments: 2, encoding: "GSM-7", reason: "x|y", template: 7})
	if string(buf) != "2|0|1000|de-CH:7||2G|x|y" {
		t.Fatalf("record %q", buf)
	}
	d, err := decodeRecord("bc_1", "sms.r1", string(buf))
	if err != nil || d.Locale != "de-CH" || d.TemplateVersion != 7 || d.Segments != 2 || d.Reason != "x|y" {
		t.Fatalf("decoded %+v, %v", d, err)
	}
	d, err = decodeRecord("bc_1", "sms.r1", "2|0|1000|de|||")
	if err != nil || d.Locale != "de" || d.TemplateVersion != 0 {
		t.Fatalf("decoded %+v, %v", d, err)
	}
}
