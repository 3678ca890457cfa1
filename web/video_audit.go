package web

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/kuzet/kuzet/dispatch"
	"github.com/kuzet/kuzet/video"
)

// VideoAudit turns the video server's view reports into journal events
// (dispatch.EvVideoViewed) without slowing the media path: OnView only
// queues (bounded; a full queue drops the report, logs it and counts it in
// kuzet_video_audit_dropped_total), and Run appends them one by one.
//
// A view produces two reports, start and end; both are journalled on the
// aggregate "view:<session>" (see dispatch/video_events.go).
type VideoAudit struct {
	svc     *dispatch.Service
	log     *slog.Logger
	queue   chan video.ViewEvent
	dropped atomic.Uint64
	failed  atomic.Uint64
}

// DefaultVideoAuditQueue is the audit queue length: a burst of 2,048 view
// starts and ends (a video wall of 64 tiles reconnecting 32 times) fits.
const DefaultVideoAuditQueue = 4096

// NewVideoAudit makes the queue; pass OnView as video.Config.OnView and run
// Run until the video server has been closed (its Close reports the end of
// every open view).
func NewVideoAudit(svc *dispatch.Service, logger *slog.Logger, queue int) *VideoAudit {
	if logger == nil {
		logger = slog.Default()
	}
	if queue <= 0 {
		queue = DefaultVideoAuditQueue
	}
	return &VideoAudit{svc: svc, log: logger.With("component", "video-audit"), queue: make(chan video.ViewEvent, queue)}
}

// OnView queues a view report; it never blocks.
func (a *VideoAudit) OnView(ev video.ViewEvent) {
	select {
	case a.queue <- ev:
	default:
		a.dropped.Add(1)
		a.log.Error("view audit queue full: view not journalled", "session", ev.SessionID, "stream", ev.StreamID, "viewer", ev.Viewer.Subject)
	}
}

// Run journals queued reports until ctx ends, then drains what is queued
// for at most drainTimeout.
func (a *VideoAudit) Run(ctx context.Context) error {
	for {
		select {
		case ev := <-a.queue:
			// Not cancelled with ctx: a report taken from the queue is
			// finished (recordTimeout bounds it).
			a.record(context.WithoutCancel(ctx), ev)
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
			defer cancel()
			for {
				select {
				case ev := <-a.queue:
					a.record(dctx, ev)
				default:
					return nil
				}
			}
		}
	}
}

const (
	drainTimeout  = 5 * time.Second
	recordTimeout = 5 * time.Second
	recordTries   = 3
)

func (a *VideoAudit) record(ctx context.Context, ev video.ViewEvent) {
	v := dispatch.VideoViewed{SessionID: ev.SessionID, StreamID: ev.StreamID, Viewer: ev.Viewer.Subject, Role: ev.Viewer.Role,
		Remote: ev.Remote, StartedAt: ev.Start.UTC(), Reason: ev.Reason}
	if !ev.End.IsZero() {
		end := ev.End.UTC()
		v.EndedAt = &end
	}
	m := dispatch.Meta{Actor: dispatch.Actor{ID: ev.Viewer.Subject, UnitID: ev.Viewer.UnitID}}
	var err error
	for try := 1; try <= recordTries; try++ {
		rctx, cancel := context.WithTimeout(ctx, recordTimeout)
		err = a.svc.RecordVideoView(rctx, m, v)
		cancel()
		if err == nil || ctx.Err() != nil {
			break
		}
		select {
		case <-time.After(time.Duration(try) * 200 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	if err != nil {
		a.failed.Add(1)
		a.log.Error("view not journalled", "session", ev.SessionID, "stream", ev.StreamID, "viewer", ev.Viewer.Subject, "err", err)
	}
}
