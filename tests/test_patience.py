from coursekit.patience import epochs_at_reduced_lr, replay_patience

# Improves for 3 epochs, then a plateau that never improves by min_delta again.
PLATEAU = [1.0, 0.8, 0.7] + [0.699] * 20


def test_scheduler_patience_below_stop_patience_minus_one_gives_epochs_at_lower_lr():
    replay = replay_patience(PLATEAU, stop_patience=5, scheduler_patience=2, lr=0.1, factor=0.1)
    # best at epoch 3; epochs 4-6 are bad, the 3rd (> patience 2) reduces the LR after epoch 6
    assert list(replay["lr"].loc[[6, 7]]) == [0.1, 0.1 * 0.1]
    assert replay["stop"].iloc[-1] and replay.index[-1] == 3 + 5
    assert epochs_at_reduced_lr(replay) == 2  # epochs 7 and 8


def test_equal_patiences_stop_before_the_lr_is_ever_reduced():
    for scheduler_patience in (4, 5, 6):
        replay = replay_patience(PLATEAU, stop_patience=5, scheduler_patience=scheduler_patience)
        assert replay.index[-1] == 8
        assert epochs_at_reduced_lr(replay) == 0


def test_counters_follow_the_same_improvement_rule():
    replay = replay_patience([1.0, 0.998, 0.99, 0.97], stop_patience=9, scheduler_patience=9,
                             min_delta=0.005)
    # 0.998 and 0.99 do not beat 1.0 by 0.005 (0.99 does: 1.0 - 0.005 = 0.995 > 0.99)
    assert list(replay["stopper_wait"]) == [0, 1, 0, 0]
    assert list(replay["scheduler_bad_epochs"]) == [0, 1, 0, 0]
