package video

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/kuzet/kuzet/internal/redistest"
	"github.com/redis/go-redis/v9"
)

const camerasCSV = `id,name,lat,lon,heading,fov,rtsp_url,substream_url,agency,tags,codec
c1,Abay Ave / Kenesary,51.1694,71.4491,90,60,rtsp://admin:hunter2@10.0.0.5/main,rtsp://admin:hunter2@10.0.0.5/sub,city,traffic;crossing,h265
c2,Baiterek,51.1283,71.4305,180,,rtsp://10.0.0.6/stream,,,,
`

func TestParseCamerasCSV(t *testing.T) {
	cams, err := ParseCamerasCSV(strings.NewReader(camerasCSV))
	if err != nil {
		t.Fatal(err)
	}
	if len(cams) != 2 || cams[0].Tags[1] != "crossing" || cams[0].Codec != "h265" || cams[1].FOV != 0 || cams[0].Lat != 51.1694 {
		t.Fatalf("parsed %+v", cams)
	}
	bad := `id,lat,lon,rtsp_url,heading
ok1,51,71,rtsp://h/x,0
bad lat,95,71,rtsp://h/x,0
c3,51,71,http://h/x,0
c4,51,abc,rtsp://h/x,0
ok1,51,71,rtsp://h/x,0
c6,51,71,rtsp://h/x,360
`
	_, err = ParseCamerasCSV(strings.NewReader(bad))
	var ie *ImportError
	if !errors.As(err, &ie) || !errors.Is(err, ErrBadCamera) {
		t.Fatalf("want *ImportError, got %v", err)
	}
	want := map[int]string{3: "id", 4: "scheme", 5: "not a number", 6: "repeats row 2", 7: "heading"}
	if len(ie.Rows) != len(want) {
		t.Fatalf("rows %v", ie.Rows)
	}
	for _, r := range ie.Rows {
		if !strings.Contains(r.Err.Error(), want[r.Row]) {
			t.Errorf("row %d: %v, want mention of %q", r.Row, r.Err, want[r.Row])
		}
	}
	for _, tc := range []string{"", "id,lat\n1,2\n", "id,lat,lon,rtsp_url,colour\n"} {
		if _, err := ParseCamerasCSV(strings.NewReader(tc)); !errors.Is(err, ErrBadCamera) {
			t.Errorf("%q: %v", tc, err)
		}
	}
}

func TestParseCamerasJSON(t *testing.T) {
	cams, err := ParseCamerasJSON(strings.NewReader(`[{"id":"j1","name":"x","lat":43.2,"lon":76.9,"heading":10,"fov":90,"rtsp_url":"rtsp://u:p@h/s","tags":["a"]}]`))
	if err != nil || len(cams) != 1 || cams[0].RTSPURL != "rtsp://u:p@h/s" {
		t.Fatalf("%v %+v", err, cams)
	}
	_, err = ParseCamerasJSON(strings.NewReader(`[{"id":"a","lat":1,"lon":2,"rtsp_url":"rtsp://h/"},{"id":"b","lat":100,"lon":2,"rtsp_url":"rtsp://h/"},{"id":"c","lat":1,"lon":2,"rtsp_url":"rtsp://h/","secret":1}]`))
	var ie *ImportError
	if !errors.As(err, &ie) || len(ie.Rows) != 2 || ie.Rows[0].Row != 2 || ie.Rows[1].Row != 3 {
		t.Fatalf("%v", err)
	}
	if _, err := ParseCamerasJSON(strings.NewReader(`{"id":1}`)); !errors.Is(err, ErrBadCamera) {
		t.Fatal(err)
	}
	if _, err := ParseCamerasJSON(strings.NewReader("[" + strings.Repeat(" ", MaxImportBytes) + "]")); !errors.Is(err, ErrImportTooLarge) {
		t.Fatal(err)
	}
}

func TestCameraCredentialsNeverShown(t *testing.T) {
	cams, err := ParseCamerasCSV(strings.NewReader(camerasCSV))
	if err != nil {
		t.Fatal(err)
	}
	c := cams[0]
	js, _ := json.Marshal(c)
	pub, _ := json.Marshal(c.Public())
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "camera", c)
	for name, s := range map[string]string{"json": string(js), "public": string(pub), "string": c.String(), "fmt": fmt.Sprint(c), "slog": logged.String()} {
		if strings.Contains(s, "hunter2") || strings.Contains(s, "admin") {
			t.Errorf("%s shows credentials: %s", name, s)
		}
	}
	if !strings.Contains(string(pub), `"stream":"camera:c1"`) || !strings.Contains(string(pub), `"has_substream":true`) {
		t.Errorf("public view %s", pub)
	}
}

func TestCamerasFileStore(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	cams, _ := ParseCamerasCSV(strings.NewReader(camerasCSV))
	r, err := NewCameras(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Put(ctx, cams...); err != nil {
		t.Fatal(err)
	}
	if err := r.Put(ctx, Camera{ID: "bad"}); !errors.Is(err, ErrBadCamera) {
		t.Fatalf("invalid camera stored: %v", err)
	}
	if err := r.Delete(ctx, "c2"); err != nil {
		t.Fatal(err)
	}
	r2, err := NewCameras(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := r2.List()
	if len(got) != 1 || got[0].RTSPURL != cams[0].RTSPURL || got[0].SubstreamURL != cams[0].SubstreamURL {
		t.Fatalf("reloaded %v", got)
	}
	if pts := r2.Points(); len(pts) != 1 || pts[0].Lat != 51.1694 {
		t.Fatalf("points %v", pts)
	}
}

func TestCamerasRedisStore(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	cams, _ := ParseCamerasCSV(strings.NewReader(camerasCSV))
	r, err := NewCameras(ctx, "", rdb)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Put(ctx, cams...); err != nil {
		t.Fatal(err)
	}
	r2, err := NewCameras(ctx, "", rdb)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := r2.Get("c1"); !ok || c.RTSPURL != cams[0].RTSPURL || len(c.Tags) != 2 {
		t.Fatalf("from redis: %v %v", c, ok)
	}
	if err := r2.Delete(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if n, _ := rdb.HLen(ctx, camerasRedisKey).Result(); n != 1 {
		t.Fatalf("hash has %d cameras", n)
	}
	// The first registry still has c1 in memory; Fetch (used for a new
	// pull) reads the shared hash and forgets it.
	if _, ok := r.Get("c1"); !ok {
		t.Fatal("first registry lost c1 before fetching")
	}
	if _, ok, err := r.Fetch(ctx, "c1"); ok || err != nil {
		t.Fatalf("fetch deleted camera: %v %v", ok, err)
	}
	if _, ok := r.Get("c1"); ok {
		t.Fatal("fetch did not drop the deleted camera")
	}
	// A camera added through the second registry is fetched by the first.
	extra := cams[1]
	extra.ID = "c9"
	if err := r2.Put(ctx, extra); err != nil {
		t.Fatal(err)
	}
	if c, ok, err := r.Fetch(ctx, "c9"); !ok || err != nil || c.RTSPURL != extra.RTSPURL {
		t.Fatalf("fetch camera added elsewhere: %v %v %v", c, ok, err)
	}
}
