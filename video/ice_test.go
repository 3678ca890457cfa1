package video

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestICEServersFor(t *testing.T) {
	cams, _ := NewCameras(context.Background(), "", nil)
	turn := []string{"turn:turn.example.kz:3478?transport=udp", "turns:turn.example.kz:5349"}
	if _, err := New(Config{Cameras: cams, ICEServers: []ICEServer{{URLs: turn}}}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("TURN without credentials or secret: %v", err)
	}
	s, err := New(Config{Cameras: cams, TURNSecret: "s3cret", TURNCredentialTTL: time.Hour, ICEServers: []ICEServer{
		{URLs: []string{"stun:stun.example.kz:3478"}},
		{URLs: turn},
		{URLs: []string{"turn:static.example.kz"}, Username: "kuzet", Credential: "pw"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Unix(1_800_000_000, 0)
	got := s.ICEServersFor("user:aigerim", now)
	if len(got) != 3 || got[0].Username != "" || got[2].Username != "kuzet" {
		t.Fatalf("servers: %+v", got)
	}
	// The credential is what coturn's use-auth-secret recomputes.
	u := got[1].Username
	exp, who, _ := strings.Cut(u, ":")
	if exp != strconv.FormatInt(now.Add(time.Hour).Unix(), 10) || who != "user-aigerim" {
		t.Fatalf("username %q", u)
	}
	mac := hmac.New(sha1.New, []byte("s3cret"))
	mac.Write([]byte(u))
	if got[1].Credential != base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
		t.Fatalf("credential %q does not match HMAC-SHA1(secret, username)", got[1].Credential)
	}
}
