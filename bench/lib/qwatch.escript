#!/usr/bin/env escript
%%! -hidden
%% bench/lib/qwatch.escript — the broker's own count of a queue's ready AND unacknowledged
%% messages, polled cheaply, for bench/run and bench/chaos.
%%
%%   escript bench/lib/qwatch.escript NODE COOKIE VHOST INTERVAL_MS QUEUE...
%%
%% rabbitmqctl gets `messages_unacknowledged` the same way (an RPC over Erlang distribution
%% to rabbit_amqqueue:info/2 on the node), but boots a whole CLI for every call (~0.5 s of
%% CPU); this stays connected and asks every INTERVAL_MS instead: one gen_server call to the
%% queue process, next to nothing beside the tens of thousands of deliveries it makes a second.
%% A passive queue.declare over AMQP would be cheaper still, but reports the ready count only.
%%
%% Prints one line per poll and queue on stdout: `QUEUE READY UNACKED CONSUMERS`
%% (`QUEUE -1 -1 -1` while the queue does not exist or the node does not answer); stops when
%% stdin closes.
main([Node, Cookie, VHost, Interval | Queues]) ->
    {ok, _} = net_kernel:start([list_to_atom("bench-qwatch-" ++ os:getpid() ++ "@localhost"), shortnames]),
    erlang:set_cookie(node(), list_to_atom(Cookie)),
    Target = list_to_atom(Node),
    Names = [rpc:call(Target, rabbit_misc, r, [list_to_binary(VHost), queue, list_to_binary(Q)]) || Q <- Queues],
    Self = self(),
    spawn_link(fun() -> watch_stdin(Self) end),
    loop(Target, lists:zip(Queues, Names), list_to_integer(Interval)).

watch_stdin(Parent) ->
    case io:get_line("") of
        eof -> Parent ! stop;
        {error, _} -> Parent ! stop;
        _ -> watch_stdin(Parent)
    end.

loop(Target, Queues, Interval) ->
    lists:foreach(fun({Q, Name}) -> io:format("~s ~s~n", [Q, counts(Target, Name)]) end, Queues),
    receive
        stop -> halt(0)
    after Interval -> loop(Target, Queues, Interval)
    end.

counts(Target, Name) ->
    Keys = [messages_ready, messages_unacknowledged, consumers],
    case rpc:call(Target, rabbit_amqqueue, lookup, [Name], 5000) of
        {ok, Q} ->
            case rpc:call(Target, rabbit_amqqueue, info, [Q, Keys], 5000) of
                Info when is_list(Info) ->
                    lists:join(" ", [integer_to_list(proplists:get_value(K, Info, -1)) || K <- Keys]);
                _ -> "-1 -1 -1"
            end;
        _ -> "-1 -1 -1"
    end.
