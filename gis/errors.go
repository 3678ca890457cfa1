package gis

import "errors"

// Sentinel errors. Every error returned by this package wraps one of these
// (with %w) and adds what was wrong and what to do; callers use errors.Is.
var (
	// ErrBadFix: a position payload could not be parsed or a field is out of
	// range (latitude, longitude, accuracy, speed, heading, battery). The
	// ingest endpoint answers 400.
	ErrBadFix = errors.New("gis: invalid position fix")

	// ErrTooLarge: a payload (location body, GeoJSON) is larger than the
	// limit. The ingest endpoint answers 413.
	ErrTooLarge = errors.New("gis: payload too large")

	// ErrFutureFix: the fix time is more than the allowed skew ahead of the
	// server clock; the device clock is wrong. Nothing is stored.
	ErrFutureFix = errors.New("gis: fix time is in the future")

	// ErrNotLocation: an OwnTracks message of a type other than "location"
	// (lwt, transition, waypoint, card, ...). Not an error for the device:
	// OwnTracks expects HTTP 200 with body "[]".
	ErrNotLocation = errors.New("gis: OwnTracks message is not a location")

	// ErrUnknownUnit: the unit id has not been registered with SetUnit.
	ErrUnknownUnit = errors.New("gis: unknown unit")

	// ErrBadUnit: UnitInfo is missing its id or agency, or a value is
	// malformed.
	ErrBadUnit = errors.New("gis: invalid unit info")

	// ErrBadGeoJSON: a sector file or request body is not a valid GeoJSON
	// FeatureCollection of Polygons / MultiPolygons with id and name. Nothing
	// was stored.
	ErrBadGeoJSON = errors.New("gis: invalid sector GeoJSON")

	// ErrBadQuery: a query has an invalid point, radius, k or time range.
	ErrBadQuery = errors.New("gis: invalid query")

	// ErrBadConfig: a Config field is invalid.
	ErrBadConfig = errors.New("gis: invalid configuration")

	// ErrETA: an ETA provider failed; the recommender fell back to the
	// straight-line estimate and records this reason.
	ErrETA = errors.New("gis: ETA provider failed")

	// ErrClosed: the component was closed.
	ErrClosed = errors.New("gis: closed")

	// ErrSlowSubscriber: a Feed subscriber's queue was full; it has been
	// removed and the caller must cut the connection (the client resyncs on
	// reconnect).
	ErrSlowSubscriber = errors.New("gis: feed subscriber too slow")
)
