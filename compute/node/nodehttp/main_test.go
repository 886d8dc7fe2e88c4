package nodehttp_test

import (
	"io"
	"log/slog"
	"os"
	"testing"
)

// TestMain silences the nodes' load logs (nodetest gives them no logger).
func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	os.Exit(m.Run())
}
