package csi

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/thind-storage/thind/control"
)

// grpcError turns a control API error into the gRPC status the CSI spec
// gives the condition, with what was being done in front. Errors that
// already carry a status keep it.
func grpcError(what string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Internal
	switch {
	case errors.Is(err, control.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, control.ErrConflict):
		// Busy (connected) or already there: the caller must change
		// something first.
		code = codes.FailedPrecondition
	case errors.Is(err, control.ErrInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, control.ErrNoSpace):
		code = codes.ResourceExhausted
	case errors.Is(err, control.ErrUnavailable), errors.Is(err, control.ErrUnreachable):
		code = codes.Unavailable
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	}
	return status.Errorf(code, "%s: %v", what, err)
}

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}
