// A Go SDK service that accepts only requests signed with the key in $REPRISE_TEST_IDENTITY_KEY
// (the SDK's own request identity verification: WithIdentityV1). Built and run by
// tests/integration/test_request_identity.py; listens on $BIND.
package main

import (
	"context"
	"log"
	"os"

	restate "github.com/restatedev/sdk-go"
	"github.com/restatedev/sdk-go/server"
)

type SignedGo struct{}

func (SignedGo) Hello(ctx restate.Context, name string) (string, error) {
	return restate.Run(ctx, func(ctx restate.RunContext) (string, error) {
		return "hello " + name, nil
	})
}

func main() {
	srv := server.NewRestate().
		Bind(restate.Reflect(SignedGo{})).
		WithIdentityV1(os.Getenv("REPRISE_TEST_IDENTITY_KEY"))
	if err := srv.Start(context.Background(), os.Getenv("BIND")); err != nil {
		log.Fatal(err)
	}
}
