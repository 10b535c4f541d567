package batch

import (
	"sort"
	"strconv"
	"strings"
)

// formatIndexes renders sorted unique indexes in the Kubernetes
// status.completedIndexes form: "1,3-5,7".
func formatIndexes(idx []int) string {
	var b strings.Builder
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && idx[j+1] == idx[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(idx[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(idx[j]))
		}
		i = j + 1
	}
	return b.String()
}

// parseIndexes reads the form of formatIndexes, keeping indexes in [0, max);
// malformed parts are ignored (the status is gantry's own, but never panic).
func parseIndexes(s string, max int) map[int]bool {
	out := map[int]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			continue
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				continue
			}
		}
		for i := max0(a); i <= b && i < max; i++ {
			out[i] = true
		}
	}
	return out
}

func max0(a int) int {
	if a < 0 {
		return 0
	}
	return a
}

func sortedKeys(m map[int]bool) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}
