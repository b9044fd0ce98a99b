package watch

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
)

// Target is an object a command deleted. UID, when known, makes sure the
// wait is about the object deleted, not one created anew under its name.
type Target struct {
	Namespace, Name string
	UID             types.UID
}

// Gone waits until every target is gone (or replaced by a new object of
// the same name), reading each with get every interval, for at most
// timeout (0: no limit). On a timeout the error names resource (as kubectl
// prints it: "inferservers.infer.mindie.io") and, when finalizers hold the
// object, asks whether controller is running.
func Gone(ctx context.Context, targets []Target, get func(context.Context, Target) (metav1.Object, error),
	timeout, interval time.Duration, resource, controller string) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	pending := targets
	var last metav1.Object
	err := wait.PollUntilContextCancel(ctx, interval, true, func(ctx context.Context) (bool, error) {
		var still []Target
		for _, t := range pending {
			o, err := get(ctx, t)
			switch {
			case apierrors.IsNotFound(err):
				continue
			case err != nil:
				return false, err
			case t.UID != "" && o.GetUID() != t.UID:
				continue
			}
			if t.UID == "" {
				t.UID = o.GetUID()
			}
			last = o
			still = append(still, t)
		}
		pending = still
		return len(pending) == 0, nil
	})
	if err != nil && len(pending) > 0 && (errors.Is(err, context.DeadlineExceeded) || wait.Interrupted(err)) {
		msg := fmt.Sprintf("timed out after %v waiting for %s %q to be deleted", timeout, resource, pending[0].Name)
		if last != nil && len(last.GetFinalizers()) > 0 {
			msg += fmt.Sprintf(" (finalizers %v remain: is the %s controller running?)", last.GetFinalizers(), controller)
		}
		return errors.New(msg)
	}
	return err
}
