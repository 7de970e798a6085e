// A plain Go ingestion peer, the yardstick of scripts/bench-gateway.sh: net/http, a redigo pool,
// encoding/json validation of the API's required fields, one XADD per event with the same fields the
// gateway writes, MULTI/EXEC per batch, 202 once Redis has answered. Not part of the service.
//
// Usage: go-peer PORT REDIS_ADDR KEY_PREFIX   (built in GOPATH mode from Debian's golang-go and
// golang-github-gomodule-redigo-dev by scripts/bench-gateway.sh)
package main

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
)

type logEvent struct {
	Service   *string                `json:"service"`
	Level     *string                `json:"level"`
	Message   *string                `json:"message"`
	Timestamp *string                `json:"timestamp"`
	TraceID   *string                `json:"traceId"`
	SpanID    *string                `json:"spanId"`
	Metadata  map[string]interface{} `json:"metadata"`
}

var (
	levels       = map[string]bool{"debug": true, "info": true, "warn": true, "error": true, "fatal": true}
	organization = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	pool         *redis.Pool
	stream       string
)

func fail(w http.ResponseWriter, status int, message string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	body, _ := json.Marshal(map[string]interface{}{"statusCode": status, "message": message})
	w.Write(body)
}

func uuid() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// fields validates one event and answers its stream entry's fields.
func fields(event logEvent, org string, now string) ([]interface{}, string) {
	if event.Service == nil || strings.TrimSpace(*event.Service) == "" {
		return nil, "service is required"
	}
	if event.Level == nil || !levels[*event.Level] {
		return nil, "level must be one of debug, info, warn, error, fatal"
	}
	if event.Message == nil {
		return nil, "message is required"
	}
	timestamp := now
	if event.Timestamp != nil {
		parsed, err := time.Parse(time.RFC3339Nano, *event.Timestamp)
		if err != nil {
			return nil, "timestamp must be an ISO 8601 date-time"
		}
		timestamp = parsed.UTC().Format("2006-01-02T15:04:05.000Z")
	}
	args := []interface{}{stream, "*", "v", "1", "id", uuid(), "kind", "logs", "org", org, "received_at", now,
		"service", strings.TrimSpace(*event.Service), "level", *event.Level, "message", *event.Message, "timestamp", timestamp}
	if event.TraceID != nil {
		args = append(args, "trace_id", *event.TraceID)
	}
	if event.SpanID != nil {
		args = append(args, "span_id", *event.SpanID)
	}
	if event.Metadata != nil {
		metadata, _ := json.Marshal(event.Metadata)
		args = append(args, "metadata", string(metadata))
	}
	return args, ""
}

func ingest(batch bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		org := r.Header.Get("x-organization-id")
		if org == "" {
			org = "default"
		} else if !organization.MatchString(org) {
			fail(w, 400, "x-organization-id must match ^[A-Za-z0-9_-]{1,64}$")
			return
		}
		limit := int64(1 << 20)
		if batch {
			limit = 10 << 20
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
		if err != nil || int64(len(body)) > limit {
			fail(w, 413, "Request body exceeds the limit")
			return
		}
		var events []logEvent
		if batch {
			err = json.Unmarshal(body, &events)
		} else {
			var event logEvent
			err = json.Unmarshal(body, &event)
			events = []logEvent{event}
		}
		if err != nil || len(events) == 0 {
			fail(w, 400, "Invalid log event: malformed JSON")
			return
		}
		now := time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
		entries := make([][]interface{}, len(events))
		for i, event := range events {
			args, problem := fields(event, org, now)
			if problem != "" {
				fail(w, 400, "Invalid log event: "+problem)
				return
			}
			entries[i] = args
		}
		conn := pool.Get()
		defer conn.Close()
		if batch {
			conn.Send("MULTI")
			for _, args := range entries {
				conn.Send("XADD", args...)
			}
			_, err = conn.Do("EXEC")
		} else {
			_, err = conn.Do("XADD", entries[0]...)
		}
		if err != nil {
			w.Header().Set("Retry-After", "1")
			fail(w, 503, "Event queue is unavailable; retry later")
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(202)
		if batch {
			fmt.Fprintf(w, `{"accepted":%d}`, len(entries))
		} else {
			fmt.Fprintf(w, `{"id":"%s","queued":true}`, entries[0][5])
		}
	}
}

func main() {
	if len(os.Args) != 4 {
		log.Fatal("usage: go-peer PORT REDIS_ADDR KEY_PREFIX")
	}
	stream = os.Args[3] + ":stream:logs"
	pool = &redis.Pool{MaxIdle: 256, IdleTimeout: time.Minute, Dial: func() (redis.Conn, error) {
		return redis.Dial("tcp", os.Args[2], redis.DialConnectTimeout(time.Second), redis.DialReadTimeout(2*time.Second))
	}}
	http.HandleFunc("/events/logs", ingest(false))
	http.HandleFunc("/events/logs/batch", ingest(true))
	log.Fatal(http.ListenAndServe("127.0.0.1:"+os.Args[1], nil))
}
