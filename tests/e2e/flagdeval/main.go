// Command flagd-eval evaluates one flagd flag for many targeting keys with flagd's own
// evaluation engine (github.com/open-feature/flagd/core/pkg/evaluator: the code flagd's
// evaluation API runs for ResolveString), so tests can check the split gatectl wrote.
//
//	flagd-eval FLAG_FILE FLAG_KEY < keys
//
// Each line of stdin is a targeting key; each line of stdout is
// {"key": ..., "value": ..., "variant": ..., "reason": ..., "error": ...}.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/open-feature/flagd/core/pkg/evaluator"
	"github.com/open-feature/flagd/core/pkg/logger"
	"github.com/open-feature/flagd/core/pkg/store"
	"github.com/open-feature/flagd/core/pkg/sync"
)

type answer struct {
	Key     string `json:"key"`
	Value   string `json:"value"`
	Variant string `json:"variant"`
	Reason  string `json:"reason"`
	Error   string `json:"error,omitempty"`
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: flagd-eval FLAG_FILE FLAG_KEY < keys")
		os.Exit(2)
	}
	data, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "flagd-eval:", err)
		os.Exit(1)
	}
	log := logger.NewLogger(nil, false)
	flags, err := store.NewStore(log, []string{"file"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "flagd-eval:", err)
		os.Exit(1)
	}
	engine := evaluator.NewJSON(log, flags)
	if err := engine.SetState(sync.DataSync{FlagData: string(data), Source: "file"}); err != nil {
		fmt.Fprintln(os.Stderr, "flagd-eval: the flag file is invalid:", err)
		os.Exit(1)
	}
	keys := bufio.NewScanner(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	encode := json.NewEncoder(out)
	for keys.Scan() {
		key := keys.Text()
		value, variant, reason, _, err := engine.ResolveStringValue(
			context.Background(), "", os.Args[2], map[string]any{"targetingKey": key})
		result := answer{Key: key, Value: value, Variant: variant, Reason: reason}
		if err != nil {
			result.Error = err.Error()
		}
		if err := encode.Encode(result); err != nil {
			fmt.Fprintln(os.Stderr, "flagd-eval:", err)
			os.Exit(1)
		}
	}
}
