// Package payload turns domain tasks into the wire types of the public SDK:
// the callback bodies of the seed and the data of record-info. The server
// builds both here, from the SDK's own types, so they cannot drift from
// what the SDK's users decode.
package payload

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/tunehook/tunehook"
	"github.com/tunehook/tunehook/internal/task"
)

// Links makes the public URLs of a task's media.
type Links struct {
	// PublicURL is the base the media are served under, without a final
	// slash ("http://127.0.0.1:8080").
	PublicURL string
}

// AudioURL returns the download URL of tr's audio file.
func (l Links) AudioURL(tr task.Track) string { return l.PublicURL + "/media/" + tr.AudioKey }

// StreamURL returns the streaming URL of tr's audio.
func (l Links) StreamURL(tr task.Track) string {
	return l.PublicURL + "/stream/" + tr.TaskID + "/" + tr.ID
}

// ImageURL returns the URL of tr's cover image.
func (l Links) ImageURL(tr task.Track) string { return l.PublicURL + "/media/" + tr.ImageKey }

// stageMessages are the msg of the successful stages, as the reference
// shows them.
var stageMessages = map[task.Stage]string{
	task.StageText:     "Text generation completed successfully.",
	task.StageFirst:    "First track generated successfully.",
	task.StageComplete: "All generated successfully.",
}

// Callback returns the JSON body of t's callback for stage, as the seed
// specifies it: text carries no tracks, first the first finished track,
// complete both, and error (t.Failure set) the failure with null data.
func Callback(t *task.Task, stage task.Stage, l Links) ([]byte, error) {
	cb := tunehook.Callback{
		Code: task.CodeOK,
		Msg:  stageMessages[stage],
		Data: tunehook.CallbackData{CallbackType: tunehook.CallbackType(stage), TaskID: t.ID},
	}
	var n int
	switch stage {
	case task.StageText:
		n = 0
	case task.StageFirst:
		n = 1
	case task.StageComplete:
		n = task.TracksPerTask
	case task.StageError:
		if t.Failure == nil {
			return nil, fmt.Errorf("task %s: error callback without a failure", t.ID)
		}
		cb.Code, cb.Msg = t.Failure.Code, t.Failure.Message
		return json.Marshal(cb)
	default:
		return nil, fmt.Errorf("task %s: unknown stage %q", t.ID, stage)
	}
	if len(t.Tracks) < n {
		return nil, fmt.Errorf("task %s: %s callback needs %d tracks, has %d", t.ID, stage, n, len(t.Tracks))
	}
	cb.Data.Data = make([]tunehook.CallbackTrack, 0, n)
	for _, tr := range t.Tracks[:n] {
		cb.Data.Data = append(cb.Data.Data, tunehook.CallbackTrack{
			ID:             tr.ID,
			AudioURL:       l.AudioURL(tr),
			StreamAudioURL: l.StreamURL(tr),
			ImageURL:       l.ImageURL(tr),
			Prompt:         t.Text.Lyrics,
			ModelName:      t.Model.Chirp(),
			Title:          t.Text.Title,
			Tags:           t.Text.Tags,
			CreateTime:     tr.CreatedAt.UTC().Format(tunehook.CreateTimeLayout),
			Duration:       roundDuration(tr.Duration),
		})
	}
	return json.Marshal(cb)
}

// RecordInfo returns the record-info data of t: no response while nothing
// has been written yet, then the tracks finished so far.
func RecordInfo(t *task.Task, l Links) tunehook.RecordInfo {
	ri := tunehook.RecordInfo{
		TaskID:        t.ID,
		Param:         t.Param,
		Status:        tunehook.Status(t.Status),
		Type:          t.Model.Chirp(),
		OperationType: "generate",
		CreateTime:    t.CreatedAt.UnixMilli(),
	}
	if t.Failure != nil {
		code, msg := t.Failure.Code, t.Failure.Message
		ri.ErrorCode, ri.ErrorMessage = &code, &msg
	}
	if t.Status == task.StatusPending || (t.Text == task.Text{} && len(t.Tracks) == 0) {
		return ri
	}
	ri.Response = &tunehook.RecordResponse{TaskID: t.ID, SunoData: make([]tunehook.RecordTrack, 0, len(t.Tracks))}
	for _, tr := range t.Tracks {
		ri.Response.SunoData = append(ri.Response.SunoData, tunehook.RecordTrack{
			ID:             tr.ID,
			AudioURL:       l.AudioURL(tr),
			StreamAudioURL: l.StreamURL(tr),
			ImageURL:       l.ImageURL(tr),
			Prompt:         t.Text.Lyrics,
			ModelName:      t.Model.Chirp(),
			Title:          t.Text.Title,
			Tags:           t.Text.Tags,
			CreateTime:     tr.CreatedAt.UnixMilli(),
			Duration:       roundDuration(tr.Duration),
		})
	}
	return ri
}

// roundDuration keeps two decimals, as providers report durations.
func roundDuration(d float64) float64 { return math.Round(d*100) / 100 }
