package video

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"strings"
	"time"
)

// ICEServersFor returns the STUN/TURN servers a browser or body-cam should
// use, for the principal subject. TURN entries configured without a
// username get time-limited credentials derived from Config.TURNSecret,
// the TURN REST API convention coturn implements with use-auth-secret /
// static-auth-secret: username "<expiry unix time>:<subject>", password
// base64(HMAC-SHA1(secret, username)). The credential stops working after
// Config.TURNCredentialTTL, so one leaked from a lost phone expires.
func (s *Server) ICEServersFor(subject string, now time.Time) []ICEServer {
	out := make([]ICEServer, 0, len(s.cfg.ICEServers))
	for _, is := range s.cfg.ICEServers {
		if is.Username == "" && isTURN(is.URLs) {
			if s.cfg.TURNSecret == "" {
				continue // validated in Config; kept for safety
			}
			is.Username, is.Credential = turnCredential(s.cfg.TURNSecret, subject, now.Add(s.cfg.TURNCredentialTTL))
		}
		out = append(out, is)
	}
	return out
}

func turnCredential(secret, subject string, expires time.Time) (user, pass string) {
	user = fmt.Sprintf("%d:%s", expires.Unix(), strings.ReplaceAll(subject, ":", "-"))
	mac := hmac.New(sha1.New, []byte(secret)) // SHA-1: what coturn's shared-secret mode computes
	mac.Write([]byte(user))
	return user, base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func isTURN(urls []string) bool {
	for _, u := range urls {
		if strings.HasPrefix(u, "turn:") || strings.HasPrefix(u, "turns:") {
			return true
		}
	}
	return false
}
