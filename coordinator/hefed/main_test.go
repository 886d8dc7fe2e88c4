package hefed

import (
	"io"
	"log/slog"
	"os"
	"testing"
)

// TestMain silences the nodes' and the coordinator's logs.
func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	os.Exit(m.Run())
}
