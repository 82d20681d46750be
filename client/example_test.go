package client_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/gearhq/gear/client"
)

// Run a job and wait for its result. (Compiled, not run: it needs a job server and a worker for
// "reverse", such as `gear server` and `gear worker`.)
func ExampleClient_Do() {
	c, err := client.New(client.Options{Servers: []string{"127.0.0.1:4730"}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	out, err := c.Do(ctx, "reverse", []byte("hello"), client.Submission{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", out) // olleh
}

// Queue a job with a unique key, to run in an hour, and keep its handle to ask for its status.
func ExampleClient_SubmitBackground() {
	servers, err := client.ServersFromEnv() // GEARMAN_SERVERS, else 127.0.0.1:4730
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.New(client.Options{Servers: servers})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	handle, err := c.SubmitBackground(ctx, "send_report", []byte("weekly"), client.Submission{
		Unique: "report-weekly",
		At:     time.Now().Add(time.Hour),
	})
	if err != nil {
		log.Fatal(err)
	}
	st, err := c.Status(ctx, handle)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "%s: known=%t running=%t\n", handle, st.Known, st.Running)
}
