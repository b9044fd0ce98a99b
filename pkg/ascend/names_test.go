package ascend

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestParseChipName(t *testing.T) {
	for _, tc := range []struct {
		chip  string
		typ   string
		index int
		ok    bool
	}{
		{"Ascend910-0", "Ascend910", 0, true},
		{"Ascend310P-15", "Ascend310P", 15, true},
		{"npu-a-3", "npu-a", 3, true},
		{"Ascend910", "", 0, false},
		{"-3", "", 0, false},
		{"Ascend910-", "", 0, false},
		{"Ascend910-x", "", 0, false},
		{"Ascend910-+1", "", 0, false},
		{"Ascend910- 1", "", 0, false},
	} {
		typ, index, err := ParseChipName(tc.chip)
		if (err == nil) != tc.ok || typ != tc.typ || index != tc.index {
			t.Errorf("ParseChipName(%q) = %q, %d, %v", tc.chip, typ, index, err)
		}
	}
}

func TestParseChipList(t *testing.T) {
	for raw, want := range map[string][]string{
		"":                                     nil,
		"Ascend910-3":                          {"Ascend910-3"},
		"Ascend910-10,Ascend910-2,Ascend910-1": {"Ascend910-1", "Ascend910-2", "Ascend910-10"},
	} {
		if got := ParseChipList(raw); !cmp.Equal(got, want) {
			t.Errorf("ParseChipList(%q) = %v, want %v", raw, got, want)
		}
		if want != nil && FormatChipList(want) != strings.Join(want, ",") {
			t.Errorf("FormatChipList(%v) = %q", want, FormatChipList(want))
		}
	}
}

func TestBuildRanktableNotYet(t *testing.T) {
	pod := func(name, podIP, chips string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{ChipListAnnotation("Ascend910"): chips}},
			Status:     corev1.PodStatus{PodIP: podIP, HostIP: "127.0.0.1"},
		}
	}
	for _, tc := range []struct {
		pods []*corev1.Pod
		err  string
	}{
		{[]*corev1.Pod{pod("a", "127.1.0.1", "Ascend910-0"), pod("b", "", "Ascend910-0")}, "pod b has no IP yet"},
		{[]*corev1.Pod{pod("a", "127.1.0.1", "")}, "pod a has no huawei.com/Ascend910 annotation yet"},
		{[]*corev1.Pod{pod("a", "127.1.0.1", "Ascend910-x")}, `pod a: annotation huawei.com/Ascend910: chip name "Ascend910-x"`},
	} {
		if _, err := BuildRanktable("Ascend910", tc.pods); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("BuildRanktable: %v, want %q", err, tc.err)
		}
	}
	// Without the configuration annotation the device IPs are left out.
	rt, err := BuildRanktable("Ascend910", []*corev1.Pod{pod("a", "127.1.0.1", "Ascend910-1,Ascend910-0")})
	if err != nil {
		t.Fatal(err)
	}
	if got := FormatRanktable(rt); got != `{"status":"completed","version":"1.0","server_count":"1","server_list":[{"server_id":"127.0.0.1","host_ip":"127.0.0.1","container_ip":"127.1.0.1","device":[{"device_id":"0","rank_id":"0"},{"device_id":"1","rank_id":"1"}]}]}` {
		t.Errorf("ranktable %s", got)
	}
}
