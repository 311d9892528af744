import { useCallback, useEffect, useRef, useState } from "preact/hooks";

export interface CommandState<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
}

/**
 * Runs `run` when `deps` change (and on `reload`), keeping only the answer to
 * the latest call.
 */
export function useCommand<T>(run: () => Promise<T>, deps: unknown[]): CommandState<T> {
  const [state, setState] = useState<{ data: T | undefined; error: unknown; loading: boolean }>({
    data: undefined,
    error: undefined,
    loading: true,
  });
  const [tick, setTick] = useState(0);
  const seq = useRef(0);
  useEffect(() => {
    const mine = ++seq.current;
    setState((s) => ({ ...s, loading: true }));
    run().then(
      (data) => {
        if (mine === seq.current) setState({ data, error: undefined, loading: false });
      },
      (error: unknown) => {
        if (mine === seq.current) setState((s) => ({ data: s.data, error, loading: false }));
      },
    );
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick]);
  useEffect(
    () => () => {
      seq.current++;
    },
    [],
  );
  const reload = useCallback(() => setTick((n) => n + 1), []);
  return { ...state, reload };
}
