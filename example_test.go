package tunehook_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tunehook/tunehook"
)

// Verify a callback request: the key is the TUNEHOOK_WEBHOOK_HMAC_KEY of
// the server (whsec_ keys are decoded by SigningKey). During a rotation,
// pass both the new and the old key.
func ExampleVerify() {
	key := tunehook.SigningKey("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	body := []byte(`{"code":200,"msg":"Text generation completed successfully.","data":{"callbackType":"text","task_id":"2fac9f72","data":[]}}`)
	sentAt := time.Unix(1700000000, 0)

	// What the server does before it POSTs the callback.
	h := http.Header{}
	tunehook.Sign(h, key, "msg_2fac9f72_text", "2fac9f72", sentAt, body)

	// What the receiver does with the request's headers and body. (Now is
	// set for the example's sake; leave it nil.)
	opts := tunehook.VerifyOptions{Now: func() time.Time { return sentAt.Add(time.Minute) }}
	scheme, err := tunehook.Verify(h, body, [][]byte{key}, opts)
	fmt.Println(scheme, err)

	tampered := []byte(strings.Replace(string(body), `"text"`, `"complete"`, 1))
	_, err = tunehook.Verify(h, tampered, [][]byte{key}, opts)
	fmt.Println(errors.Is(err, tunehook.ErrBadSignature))

	opts.Now = func() time.Time { return sentAt.Add(time.Hour) }
	_, err = tunehook.Verify(h, body, [][]byte{key}, opts)
	fmt.Println(err)
	// Output:
	// standard webhooks <nil>
	// true
	// timestamp 1700000000, now 1700003600, tolerance 5m0s: timestamp too old
}

// Err makes the failure path impossible to miss: a failed task arrives as a
// callback too, with the failure's code in the envelope.
func ExampleCallback_Err() {
	cb, err := tunehook.ParseCallback([]byte(`{"code":531,"msg":"Sorry, the generation failed due to an issue. Your credits have been refunded. Please try again.","data":{"callbackType":"error","task_id":"2fac9f72","data":null}}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	if taskErr, ok := errors.AsType[*tunehook.TaskError](cb.Err()); ok {
		fmt.Println(taskErr.Code, taskErr.TaskID)
		fmt.Println(taskErr)
	}
	// Output:
	// 531 2fac9f72
	// task 2fac9f72 failed: code 531 (generation failed, credits refunded: try again): Sorry, the generation failed due to an issue. Your credits have been refunded. Please try again.
}

// A Receiver mounted on a mux: it answers at once and processes each
// callback once, after the answer.
func ExampleNewReceiver() {
	key := []byte("secret-key")
	var mu sync.Mutex
	var processed []string
	receiver := tunehook.NewReceiver(func(ctx context.Context, cb *tunehook.Callback) error {
		if err := cb.Err(); err != nil {
			return nil // the task failed: record it, tell the user...
		}
		mu.Lock()
		defer mu.Unlock()
		processed = append(processed, fmt.Sprintf("%s %s: %d tracks", cb.Data.TaskID, cb.Data.CallbackType, len(cb.Data.Data)))
		return nil
	}, tunehook.ReceiverOptions{Keys: [][]byte{key}})

	mux := http.NewServeMux()
	mux.Handle("POST /suno-callback", receiver)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// The server delivers the complete callback, then delivers it again.
	body := `{"code":200,"msg":"All generated successfully.","data":{"callbackType":"complete","task_id":"2fac9f72","data":[{"id":"8551662c","title":"Iron Man","duration":198.44},{"id":"bd151873","title":"Iron Man","duration":228.28}]}}`
	for range 2 {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/suno-callback", strings.NewReader(body))
		tunehook.Sign(req.Header, key, "msg_2fac9f72_complete", "2fac9f72", time.Now(), []byte(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, strings.TrimSpace(string(answer)))
	}

	// At exit: wait until what was accepted has been processed.
	if err := receiver.Shutdown(context.Background()); err != nil {
		fmt.Println(err)
	}
	fmt.Println(processed)
	// Output:
	// 200 {"status":"received"}
	// 200 {"status":"duplicate"}
	// [2fac9f72 complete: 2 tracks]
}

// The seed's Express receiver, in Go: log each callback, act on complete,
// handle failures. The Receiver answers 200 before handleCallback runs, and
// runs it once per callback, so the handler may take its time.
func Example_seedReceiver() {
	handleCallback := func(ctx context.Context, cb *tunehook.Callback) error {
		fmt.Printf("Received callback: task %s, code %d, msg %q, callbackType %s\n",
			cb.Data.TaskID, cb.Code, cb.Msg, cb.Data.CallbackType)
		if err := cb.Err(); err != nil {
			// Task failed: tell the user, refund, resubmit...
			fmt.Println("Task failed:", err)
			return nil
		}
		switch cb.Data.CallbackType {
		case tunehook.CallbackComplete:
			fmt.Println("Music generation completed:", cb.Data.TaskID)
			for _, audio := range cb.Data.Data {
				// Download promptly: providers keep files for 14 days.
				fmt.Printf("Audio %s: %s %q %.2f seconds\n", audio.ID, audio.AudioURL, audio.Title, audio.Duration)
			}
		case tunehook.CallbackFirst:
			fmt.Println("First track completed:", cb.Data.TaskID)
		case tunehook.CallbackText:
			fmt.Println("Text generation completed:", cb.Data.TaskID)
		}
		// An error makes the Receiver retry the call.
		return nil
	}

	receiver := tunehook.NewReceiver(handleCallback, tunehook.ReceiverOptions{
		// Keys: [][]byte{tunehook.SigningKey(os.Getenv("TUNEHOOK_WEBHOOK_HMAC_KEY"))},
	})
	mux := http.NewServeMux()
	mux.Handle("POST /suno-callback", receiver)
	srv := httptest.NewServer(mux) // http.ListenAndServe(":3000", mux) in a real program
	defer srv.Close()

	for _, body := range []string{
		seedComplete,
		`{"code":400,"msg":"Lyrics contained copyrighted material.","data":{"callbackType":"error","task_id":"5b7e****01ac","data":null}}`,
	} {
		resp, err := http.Post(srv.URL+"/suno-callback", "application/json", strings.NewReader(body))
		if err != nil {
			fmt.Println(err)
			return
		}
		resp.Body.Close()
	}
	receiver.Shutdown(context.Background())
	// The two tasks are processed concurrently, so their lines may
	// interleave.

	// Unordered output:
	// Received callback: task 2fac****9f72, code 200, msg "All generated successfully.", callbackType complete
	// Music generation completed: 2fac****9f72
	// Audio 8551****662c: https://example.cn/****.mp3 "Iron Man" 198.44 seconds
	// Audio bd15****1873: https://example.cn/****.mp3 "Iron Man" 228.28 seconds
	// Received callback: task 5b7e****01ac, code 400, msg "Lyrics contained copyrighted material.", callbackType error
	// Task failed: task 5b7e****01ac failed: code 400 (lyrics contained copyrighted material): Lyrics contained copyrighted material.
}

// Submit a task and wait for its result. The stand-in server here answers
// like a provider that ignores long-polling: each poll sees the next
// status. Against tunehook, Wait long-polls and sees each status as soon as
// it is reached.
func ExampleClient_Wait() {
	statuses := []string{"PENDING", "TEXT_SUCCESS", "FIRST_SUCCESS", "SUCCESS"}
	var polls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/generate" {
			fmt.Fprint(w, `{"code":200,"msg":"success","data":{"taskId":"2fac9f72"}}`)
			return
		}
		status := statuses[min(int(polls.Add(1))-1, len(statuses)-1)]
		fmt.Fprintf(w, `{"code":200,"msg":"success","data":{"taskId":"2fac9f72","status":%q}}`, status)
	}))
	defer srv.Close()

	ctx := context.Background()
	client := tunehook.NewClient(srv.URL, "your-api-key")
	taskID, err := client.Generate(ctx, tunehook.GenerateRequest{
		Model:       "V5",
		Prompt:      "an upbeat rock song about night city lights",
		CallBackURL: "https://example.com/suno-callback", // required even when polling
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	rec, err := client.Wait(ctx, taskID, tunehook.WaitOptions{
		PollInterval: time.Millisecond, // the default, 30 s, is what providers ask for
		OnStatus:     func(r *tunehook.RecordInfo) { fmt.Println(r.Status) },
	})
	if taskErr, ok := errors.AsType[*tunehook.TaskError](err); ok {
		fmt.Println("failed:", taskErr.Code, taskErr.Msg)
		return
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("done:", rec.TaskID)
	// Output:
	// PENDING
	// TEXT_SUCCESS
	// FIRST_SUCCESS
	// SUCCESS
	// done: 2fac9f72
}

// Errors of the API carry its code; errors.Is tells them apart, and
// RetryAfter says how long the server asked to wait.
func ExampleAPIError() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		fmt.Fprint(w, `{"code":430,"msg":"Your call frequency is too high. Please try again later.","data":null}`)
	}))
	defer srv.Close()

	_, err := tunehook.NewClient(srv.URL, "your-api-key").Generate(context.Background(), tunehook.GenerateRequest{})
	fmt.Println(err)
	if apiErr, ok := errors.AsType[*tunehook.APIError](err); ok && errors.Is(err, tunehook.ErrRateLimited) {
		fmt.Println("retry in", apiErr.RetryAfter, "temporary:", apiErr.Temporary())
	}
	// Output:
	// generate: code 430 (rate limited): Your call frequency is too high. Please try again later.
	// retry in 7s temporary: true
}
