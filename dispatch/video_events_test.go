package dispatch_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/kuzet/kuzet/dispatch"
	"github.com/kuzet/kuzet/dispatch/journal"
	"github.com/kuzet/kuzet/dispatch/journal/filejournal"
)

func TestRecordVideoView(t *testing.T) {
	j, err := filejournal.Open(filejournal.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	s := start(t, j, nil)
	ctx := context.Background()
	m := dispatch.Meta{Actor: dispatch.Actor{ID: "user:aigerim"}}
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	t1 := t0.Add(90 * time.Second)
	v := dispatch.VideoViewed{SessionID: "s1", StreamID: "unit:P101", Viewer: "user:aigerim", Role: "dispatcher", Remote: "10.0.0.7:51234", StartedAt: t0}
	if err := s.RecordVideoView(ctx, m, v); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordVideoView(ctx, m, v); err != nil { // retried start: no second record
		t.Fatal(err)
	}
	end := v
	end.EndedAt, end.Reason = &t1, "delete"
	if err := s.RecordVideoView(ctx, m, end); err != nil {
		t.Fatal(err)
	}
	// An end whose start was never recorded gets both events.
	lost := dispatch.VideoViewed{SessionID: "s2", StreamID: "camera:c1", Viewer: "user:aigerim", Role: "dispatcher", StartedAt: t0, EndedAt: &t1, Reason: "peer gone"}
	if err := s.RecordVideoView(ctx, m, lost); err != nil {
		t.Fatal(err)
	}
	var got []journal.Record
	if err := j.Read(ctx, 0, func(r journal.Record) error {
		if r.Type == dispatch.EvVideoViewed {
			got = append(got, r)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		agg   string
		ver   uint64
		ended bool
	}{{"view:s1", 1, false}, {"view:s1", 2, true}, {"view:s2", 1, false}, {"view:s2", 2, true}}
	if len(got) != len(want) {
		t.Fatalf("%d video.viewed records, want %d", len(got), len(want))
	}
	for i, w := range want {
		var p dispatch.VideoViewed
		if err := json.Unmarshal(got[i].Data, &p); err != nil {
			t.Fatal(err)
		}
		if got[i].Aggregate != w.agg || got[i].Version != w.ver || (p.EndedAt != nil) != w.ended || got[i].Actor != "user:aigerim" {
			t.Errorf("record %d: %s v%d ended=%v actor %s, want %+v", i, got[i].Aggregate, got[i].Version, p.EndedAt != nil, got[i].Actor, w)
		}
	}
	bad := []dispatch.VideoViewed{
		{StreamID: "unit:P101", Viewer: "user:a", StartedAt: t0},
		{SessionID: "s3", Viewer: "user:a", StartedAt: t0},
		{SessionID: "s3", StreamID: "unit:P101", StartedAt: t0},
		{SessionID: "s3", StreamID: "unit:P101", Viewer: "user:a"},
		{SessionID: "s3", StreamID: "unit:P101", Viewer: "user:a", StartedAt: t1, EndedAt: &t0},
	}
	for i, b := range bad {
		if err := s.RecordVideoView(ctx, m, b); !errors.Is(err, dispatch.ErrInvalid) {
			t.Errorf("bad view %d: %v, want ErrInvalid", i, err)
		}
	}
}
